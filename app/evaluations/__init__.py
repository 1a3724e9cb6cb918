"""The evaluation of a tender in the app: automatic compliance and commercial scoring with the
panel's overrules, abnormally-low price justifications, blind technical score sheets,
unblinding and ranking. Every computation is `evaluation.score` (imported as
`evaluation_lib`); this package gathers the data and stores results.

`scoring_file` builds the scoring file's input and stores its result; `queries` reads;
`operations` changes (verb_noun, audited, never committing); `presentation` and `charts`
are what the pages and the API show; `signals` links finalising to the record. The
technical parts and their random codes are kept at opening (`app.opening.parts`)."""
