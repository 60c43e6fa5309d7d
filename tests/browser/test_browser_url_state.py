"""URL state in a real browser: reload keeps the view, a copied link opens it in a fresh browser."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from tests.browser.browser_kit import (
    choose_select,
    exception_texts,
    fresh_page,
    goto,
    open_page,
    selected_value,
    settle,
    shot,
)

SIDEBAR = '[data-testid="stSidebar"]'


def _params(page) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items()}


def _wait_param(page, name: str, value: str) -> None:
    page.wait_for_function("([n, v]) => new URL(location.href).searchParams.get(n) === v", arg=[name, value])


def test_reload_and_copied_link_keep_run_checkpoint_and_comparison(page, server, browser, artifacts_dir,
                                                                    demo_runs_root):
    names = sorted((p.name for p in (demo_runs_root / "demo").glob("checkpoint-*")),
                   key=lambda n: int(n.split("-")[1]))
    goto(page, server)
    settle(page)
    _wait_param(page, "ckpt", names[-1])
    choose_select(page, "Checkpoint", names[0], scope=SIDEBAR)
    _wait_param(page, "ckpt", names[0])
    assert _params(page)["run"] == "demo"
    open_page(page, "Comparison")
    _wait_param(page, "ckpt", names[0])  # still in the URL on another page
    page.get_by_text("Eval set", exact=True).first.click()
    settle(page)
    _wait_param(page, "mode", "eval")
    page.reload()
    settle(page)
    assert names[0] in selected_value(page, "Checkpoint", scope=SIDEBAR)  # was: back to the newest
    assert page.locator('[data-testid="stRadio"] input[type="radio"]:checked').count() >= 1
    assert "Eval set source" in page.locator('[data-testid="stMain"]').inner_text()
    shot(page, artifacts_dir, "url-state-after-reload")
    link = page.url
    with fresh_page(browser) as other:
        other.goto(link)
        settle(other)
        assert names[0] in selected_value(other, "Checkpoint", scope=SIDEBAR)
        assert "Eval set source" in other.locator('[data-testid="stMain"]').inner_text()
        assert exception_texts(other) == []
    with fresh_page(browser) as other:
        other.goto(f"{server.url}/?run=../../etc&ckpt=passwd")
        settle(other)
        assert "not a run under the runs root" in other.locator('[data-testid="stApp"]').inner_text()
        assert selected_value(other, "Run", scope=SIDEBAR).startswith("demo")
        assert exception_texts(other) == []
        shot(other, artifacts_dir, "url-state-bad-link")
