"""What schemathesis cannot read from the document alone: names that have
the credential-name format (loaded through ``SCHEMATHESIS_HOOKS`` by
schemathesis_run.py)."""

from hypothesis import strategies as st

import schemathesis
from actionq.server.models import CREDENTIAL_NAME_FORMAT, RESERVED_NAMES

CREDENTIAL_NAMES = st.from_regex(r"\A[\w.@+-]([\w .@+-]{0,98}[\w.@+-])?\Z", alphabet=st.characters(codec="ascii")).filter(
    lambda name: name.lower() not in RESERVED_NAMES
)
"""ASCII letters, digits, punctuation and inner spaces: names the core takes
(test_api.py's test_drawn_credential_names_are_taken checks it)."""

schemathesis.openapi.format(CREDENTIAL_NAME_FORMAT, CREDENTIAL_NAMES)
