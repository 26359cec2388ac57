"""Shared test set-up: the rewrite passes check their use-lists after every edit (passes/_patterns)."""
from tinyc.passes import _patterns

_patterns.CHECK_INDEX = True


ONNX_NODE_TESTS = "test_onnx_backend.py::OnnxBackendNodeModelTest::"


def pytest_terminal_summary(terminalreporter):
    """The count of ONNX's node tests run through tinyc.backend (tests/test_onnx_backend.py): passed,
    failed, and skipped by reason."""
    stats = terminalreporter.stats
    mine = {key: [r for r in stats.get(key, []) if ONNX_NODE_TESTS in getattr(r, "nodeid", "")]
            for key in ("passed", "failed", "skipped")}
    if not any(mine.values()):
        return
    reasons: dict[str, int] = {}
    for report in mine["skipped"]:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    passed = sum(r.when == "call" for r in mine["passed"])
    terminalreporter.write_sep("-", "ONNX node tests through tinyc.backend (float32, host build)")
    terminalreporter.write_line(f"{passed} passed, {len(mine['failed'])} failed, {len(mine['skipped'])} skipped")
    for reason, count in sorted(reasons.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"{count:6d} skipped: {reason}")
