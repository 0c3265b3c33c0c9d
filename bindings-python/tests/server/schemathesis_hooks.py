"""What schemathesis cannot read from the document alone: names that have
the credential-name format, and claims that would wait (loaded through
``SCHEMATHESIS_HOOKS`` by schemathesis_run.py)."""

from hypothesis import strategies as st

import schemathesis
from actionq import limits
from actionq.server.models import CREDENTIAL_NAME_FORMAT, RESERVED_NAMES

CREDENTIAL_NAMES = st.from_regex(r"\A[\w.@+-]([\w .@+-]{0,98}[\w.@+-])?\Z", alphabet=st.characters(codec="ascii")).filter(
    lambda name: name.lower() not in RESERVED_NAMES
)
"""ASCII letters, digits, punctuation and inner spaces: names the core takes
(test_api.py's test_drawn_credential_names_are_taken checks it)."""

schemathesis.openapi.format(CREDENTIAL_NAME_FORMAT, CREDENTIAL_NAMES)


@schemathesis.hook
def map_body(context: schemathesis.HookContext, body: object) -> object:
    """A claim's wait drawn in range (up to a minute) waits a hundredth of a
    second instead: nothing is claimable for most of the run, so every such
    claim would hold the run for its whole wait. Its answer (204) is the same."""
    operation = context.operation
    if operation is not None and operation.path.endswith("/actions/claim") and isinstance(body, dict):
        wait = body.get("wait_seconds")
        if isinstance(wait, (int, float)) and not isinstance(wait, bool) and 0 < wait <= limits.MAX_WAIT_SECONDS:
            body["wait_seconds"] = 0.01
    return body
