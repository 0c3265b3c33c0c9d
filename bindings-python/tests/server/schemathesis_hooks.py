"""What schemathesis cannot read from the document alone: names that have
the credential-name format (loaded through ``SCHEMATHESIS_HOOKS`` by
schemathesis_run.py)."""

from hypothesis import strategies as st

import schemathesis
from actionq.server.models import CREDENTIAL_NAME_FORMAT, RESERVED_NAMES

# Letters, digits, punctuation and inner spaces: names the core takes
# (test_openapi_truth.py checks the core takes what this draws).
schemathesis.openapi.format(
    CREDENTIAL_NAME_FORMAT,
    st.from_regex(r"\A[\w.@+-]([\w .@+-]{0,98}[\w.@+-])?\Z").filter(lambda n: n.lower() not in RESERVED_NAMES),
)
