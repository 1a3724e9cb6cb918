"""The evaluation of a tender in the app: technical parts kept at opening under random codes,
the anonymity scan, automatic compliance and commercial scoring with the panel's overrules,
abnormally-low price justifications, blind technical score sheets, unblinding and ranking.
Every computation is `evaluation.score`; this package gathers the data and stores results."""
