"""Who submits the simulated jobs: DIRAC user names (JobDB ``Owner``) and their groups (``OwnerGroup``).

BES3-like: the production manager ``bes_prod`` (group ``bes_prod``) submits 2 of every 7 jobs, five
analysis users (group ``bes_user``) one each. A ``user-broken`` fault may name any other valid user name:
a user who submits nothing else, in group ``bes_user``.
"""

from __future__ import annotations

import re

USERS = (("bes_prod", "bes_prod"), ("bes_prod", "bes_prod"), ("zhangsy", "bes_user"), ("liuhm", "bes_user"),
         ("wangxl", "bes_user"), ("chenjq", "bes_user"), ("ivanovpa", "bes_user"))
GROUPS = tuple(sorted({group for _, group in USERS}))
# DIRAC user names (sections of the CS Registry/Users): letters, digits, "_", "-"; no dots, so a site or host
# name given by mistake is refused.
USER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


def group_of(owner: str) -> str:
    """The owner's group: from ``USERS``, else ``bes_user`` (an analysis user)."""
    return next((g for o, g in USERS if o == owner), "bes_user")
