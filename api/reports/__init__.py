"""The reports, one module each, shared by the HTTP routes and the exports so
a screen and a file built at the same moment show the same numbers: plain
dicts out, parameterised SQL in (each figure's SQL one named text), scoped
by the caller's ``Scope``; nothing here reads a request.

- ``engagement``: the weekly chart and its tiles (closed weeks kept by
  ``summaries``);
- ``learners``: the learner list, its pages, and its rows for files (CSV);
- ``kpis``: seed 003's KPIs (the readiness delta per term from ``terms``);
- ``activity``: reports generated and audit events tiles;
- ``learner_events``: one learner's raw events;
- ``common``: what every report uses (queries run together, freshness,
  tiles, the scope's description);
- ``scope``: who may see what, and the scope as SQL conditions (``Filter``);
- ``org``: the org data scopes are computed from; ``cache``: results kept
  per round.
"""
