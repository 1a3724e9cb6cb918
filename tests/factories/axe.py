"""axe-core (the npm dev dependency in node_modules) run in a Playwright page. It is
injected through the DevTools protocol, so the page's strict CSP stays on."""

from __future__ import annotations

from pathlib import Path

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
# The impacts that fail a test; "moderate" and "minor" are reported only.
BLOCKING = frozenset({"critical", "serious"})
# The key pages of every role (tests/browser/test_layout_a11y.py) have no moderate
# violation either (the supervisor's dashboard was the last): they fail on one too.
KEY_PAGES_FAILING = BLOCKING | {"moderate"}
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


def run_axe(page) -> list[dict]:
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate(
        "() => axe.run(document, {runOnly: {type: 'tag', values: "
        f"{TAGS}}}}})"
        ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact, "
        "nodes: v.nodes.length, target: v.nodes[0].target.join(' ')})))"
    )
    return result
