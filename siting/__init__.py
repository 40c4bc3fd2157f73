"""siting — plan elderly-care institutions (养老机构) against planning rules.

Pipeline: ``scenario → demand → reach → model → solve → report``; ``cli`` and the
notebooks call the same :mod:`siting.api`.
"""

__version__ = "0.1.0"
