"""Planted patterns: each pattern's documented mechanism, rate and label, and the code that plants it.

One module per family of planted fraud or KYC risk, so that a pattern is read (and changed) in one
place: ``specs`` (what each pattern is, its rate and label, the ground-truth stages; rendered into
the data card), ``takeover`` (account takeover), ``sellers`` (stolen goods, restricted goods),
``rings`` (shell-company rings), ``identity`` (synthetic identities, sanctioned people and PEPs,
honest document typos), ``volumes`` (activity beyond the KYC declaration) and ``outcomes``
(friendly fraud, freezes, USD values); ``common`` holds the helpers they share. The generator
(``features.synthetic.generate``) runs them in a fixed order from one random generator, so the
split changes no draw: the same seed gives byte-identical files.
"""

from __future__ import annotations

from features.synthetic.patterns.identity import HonestTypo, SanctionedOrPep, SyntheticIdentity
from features.synthetic.patterns.outcomes import apply_freezes, friendly_fraud, transaction_usd
from features.synthetic.patterns.rings import ShellCompanyRing
from features.synthetic.patterns.sellers import RestrictedGoods, StolenGoodsSeller
from features.synthetic.patterns.specs import BAD_STAGES, PATTERNS, PERIOD_DAYS, SPEC, SPECS, STAGES
from features.synthetic.patterns.takeover import AccountTakeover
from features.synthetic.patterns.volumes import OutgrownKyc, declare_volumes

__all__ = [
    "BAD_STAGES",
    "PATTERNS",
    "PERIOD_DAYS",
    "SPEC",
    "SPECS",
    "STAGES",
    "AccountTakeover",
    "HonestTypo",
    "OutgrownKyc",
    "RestrictedGoods",
    "SanctionedOrPep",
    "ShellCompanyRing",
    "StolenGoodsSeller",
    "SyntheticIdentity",
    "apply_freezes",
    "declare_volumes",
    "friendly_fraud",
    "transaction_usd",
]
