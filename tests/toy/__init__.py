"""The template system 'relax', which ships as :mod:`eqflow.testing.toy` (``import toy`` keeps
working in this repository's tests)."""
from eqflow.testing.toy import *  # noqa: F401,F403
from eqflow.testing.toy import SCHEMA_PATH, SYSTEM, create, relax, residual  # noqa: F401
