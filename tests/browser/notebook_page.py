"""Drive one notebook in JupyterLab 4 through Playwright's sync API.

What the page shows is the primary evidence (prompts, kernel status, rendered widgets); errors are read
from the notebook model (`window.jupyterapp`, exposed by the test server), because in the DOM an error
traceback and a harmless line on stderr are rendered the same way.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
_LOG_LEVELS = {"Critical", "Error", "Warning", "Info", "Debug"}
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

# One round trip per poll: kernel status, prompts of the code cells, open dialogs, rendered widget views.
_SNAPSHOT_JS = """
(sel) => {
  const panel = document.querySelector(sel);
  const texts = [...document.querySelectorAll('.jp-StatusBar-Widget .jp-StatusBar-TextItem')]
    .map((e) => e.textContent.trim());
  const kernel = texts.find((t) => / \\| /.test(t)) || '';
  const codeCells = panel ? [...panel.querySelectorAll('.jp-Cell.jp-CodeCell')] : [];
  const prompts = codeCells.map((c) => {
    const p = c.querySelector('.jp-InputPrompt');
    return p ? p.textContent.trim() : '';
  });
  const dialogs = [...document.querySelectorAll('.jp-Dialog')].map((d) => d.innerText.trim().slice(0, 500));
  // Rendered widget views per cell (all cell types, so indices match the model's cells).
  const cells = panel ? [...panel.querySelectorAll('.jp-Cell')] : [];
  const rendered = cells.map((c) => c.querySelectorAll('.jp-OutputArea-output > .jupyter-widgets').length);
  const widgetErrors = cells.flatMap((c, i) => [...c.querySelectorAll('.jp-OutputArea-output')]
    .map((o) => o.innerText.trim())
    .filter((t) => t.startsWith('Error displaying widget'))
    .map((t) => `cell ${i}: ${t.slice(0, 300)}`));
  return {
    panel: !!panel,
    kernel: kernel,
    prompts: prompts,
    dialogs: dialogs,
    widgets_rendered: rendered,
    widget_errors: widgetErrors,
  };
}
"""

# The notebook as nbformat JSON, from the model of the panel that shows `path`.
_MODEL_JS = """
(path) => {
  const app = window.jupyterapp;
  if (!app) return null;
  for (const w of app.shell.widgets('main')) {
    if (w.context && w.context.path === path && w.content && w.content.model) {
      return w.content.model.toJSON();
    }
  }
  return null;
}
"""

# Top-level `.rl-widget` elements (not nested in another one), tagged with an index for later lookups.
_TAG_WIDGETS_JS = """
(sel) => {
  const panel = document.querySelector(sel);
  if (!panel) return [];
  const cells = [...panel.querySelectorAll('.jp-Cell')];
  const found = [...panel.querySelectorAll('.rl-widget')]
    .filter((el) => !(el.parentElement && el.parentElement.closest('.rl-widget')));
  return found.map((el, i) => {
    el.setAttribute('data-rl-test-index', String(i));
    return {
      index: i,
      cell: cells.indexOf(el.closest('.jp-Cell')),
      outputs: el.querySelectorAll('.rl-widget-output').length,
      sliders: el.querySelectorAll('.widget-slider .noUi-handle').length,
      dropdowns: el.querySelectorAll('.widget-dropdown select').length,
    };
  });
}
"""


class NotebookCheckError(AssertionError):
    """A failed check, with a message meant to be read in the pytest report."""


@dataclass
class Snapshot:
    panel: bool
    kernel: str
    prompts: list[str]
    dialogs: list[str]
    widgets_rendered: list[int]
    widget_errors: list[str]

    @property
    def kernel_state(self) -> str:
        return self.kernel.rsplit("|", 1)[-1].strip().lower() if "|" in self.kernel else ""

    @property
    def running(self) -> int:
        return sum(p == "[*]:" for p in self.prompts)

    @property
    def numbered(self) -> list[bool]:
        return [bool(re.fullmatch(r"\[\d+\]:", p)) for p in self.prompts]


def _cell_source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _excerpt(text: str, n: int = 80) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= n else first[: n - 1] + "…"


class NotebookPage:
    def __init__(self, page, lab_url: str, rel_path: str, notebook_json: dict):
        self.page = page
        self.lab_url = lab_url
        self.rel_path = rel_path
        self.cells = notebook_json.get("cells", [])
        code = [c for c in self.cells if c.get("cell_type") == "code"]
        # JupyterLab does not execute a code cell whose source is blank; its prompt stays "[ ]:".
        self.expect_run = [bool(_cell_source(c).strip()) for c in code]
        self.code_cell_index = [i for i, c in enumerate(self.cells) if c.get("cell_type") == "code"]
        self.console: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.console.append(f"pageerror: {exc}"))

    def _on_console(self, msg) -> None:
        if msg.type == "error":
            self.console.append(f"console.error: {msg.text[:300]}")

    # -- diagnostics ------------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        return Snapshot(**self.page.evaluate(_SNAPSHOT_JS, NOTEBOOK))

    def describe(self, snap: Snapshot | None = None) -> str:
        try:
            snap = snap or self.snapshot()
            state = (
                f"kernel status bar: {snap.kernel!r}; prompts: {' '.join(snap.prompts) or '-'}; "
                f"dialogs: {snap.dialogs or '-'}"
            )
        except Exception as exc:  # the page may be gone
            state = f"<page state unavailable: {exc}>"
        tail = "\n".join(self.console[-8:])
        return state + (f"\nbrowser console (last errors):\n{tail}" if tail else "")

    def fail(self, message: str, snap: Snapshot | None = None) -> NotebookCheckError:
        return NotebookCheckError(f"{self.rel_path}: {message}\n{self.describe(snap)}")

    def log_console_tail(self, n_lines: int = 15) -> str:
        """The tail of JupyterLab's log console, where tracebacks from widget callbacks end up."""
        try:
            self.page.evaluate("() => window.jupyterapp.commands.execute('logconsole:open')")
            panel = self.page.locator(".jp-LogConsolePanel").first
            panel.wait_for(state="visible", timeout=5000)
            time.sleep(0.5)
            lines = [ln for ln in panel.inner_text().splitlines() if ln.strip()]
        except Exception as exc:
            return f"<log console unavailable: {exc}>"
        lines = [ln for ln in lines if not ln.startswith("Log Level") and ln not in _LOG_LEVELS]
        return "\n".join(lines[-n_lines:]) or "<empty>"

    def widget_fail(self, message: str) -> NotebookCheckError:
        return self.fail(
            f"{message}\nlog console (widget callbacks' output), last lines:\n{self.log_console_tail()}"
        )

    # -- steps ------------------------------------------------------------------------------------------

    def open(self, timeout_s: float = 90.0) -> None:
        self.page.goto(self.lab_url, wait_until="domcontentloaded", timeout=timeout_s * 1000)
        try:
            self.page.locator(NOTEBOOK).wait_for(state="visible", timeout=timeout_s * 1000)
        except Exception as exc:
            raise self.fail(f"the notebook panel did not appear within {timeout_s:.0f} s ({exc})") from None
        self._collapse_left_area()
        self.wait_kernel_idle(timeout_s)

    def _collapse_left_area(self) -> None:
        """Close the file browser so the notebook gets the width (cosmetic; ignored if it fails)."""
        tab = self.page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
        try:
            if tab.count():
                tab.first.click(timeout=5000)
        except Exception:
            pass

    def accept_dialogs(self, snap: Snapshot) -> list[str]:
        """Accept open dialogs (e.g. "Select Kernel" for an unknown kernelspec): the default choice."""
        handled = []
        for text in snap.dialogs:
            button = self.page.locator(".jp-Dialog .jp-Dialog-footer .jp-mod-accept").first
            try:
                button.click(timeout=5000)
                handled.append(text)
            except Exception:
                self.page.keyboard.press("Escape")
                handled.append(text + " (dismissed with Escape)")
        for text in handled:
            print(f"{self.rel_path}: answered a dialog: {' '.join(text.split())}")
        return handled

    def wait_kernel_idle(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        snap = self.snapshot()
        while time.monotonic() < deadline:
            snap = self.snapshot()
            if snap.dialogs:
                self.accept_dialogs(snap)
            elif snap.kernel_state == "idle":
                return
            time.sleep(0.25)
        raise self.fail(f"the kernel was not idle within {timeout_s:.0f} s after opening", snap)

    def _click_run_all(self) -> None:
        page = self.page
        page.keyboard.press("Escape")  # close any open menu; leaves the notebook in command mode
        menu = page.locator(
            ".lm-MenuBar-item", has=page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$"))
        )
        menu.first.click()
        item = page.locator(
            ".lm-Menu-item:not(.lm-mod-disabled)",
            has=page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")),
        ).first
        item.wait_for(state="visible", timeout=10_000)
        item.click()

    def _unrun_cells(self, snap: Snapshot) -> list[int]:
        """Indices (in the notebook) of non-blank code cells whose prompt shows no number."""
        if len(snap.numbered) != len(self.expect_run):  # the page does not show all code cells
            return [i for i, e in zip(self.code_cell_index, self.expect_run, strict=True) if e]
        return [
            i
            for i, n, e in zip(self.code_cell_index, snap.numbered, self.expect_run, strict=True)
            if e and not n
        ]

    def _started(self, snap: Snapshot) -> bool:
        return snap.running > 0 or any(snap.numbered) or not any(self.expect_run)

    def run_all(self, start_timeout_s: float = 20.0) -> None:
        """Run → Run All Cells; click once more if no cell started (e.g. a dialog or a slow menu ate it)."""
        for attempt in (1, 2):
            self._click_run_all()
            deadline = time.monotonic() + start_timeout_s
            while time.monotonic() < deadline:
                snap = self.snapshot()
                if self._started(snap):
                    return
                if snap.dialogs:
                    self.accept_dialogs(snap)
                time.sleep(0.2)
            if attempt == 1:
                self.page.keyboard.press("Escape")
        raise self.fail(
            f"no cell started after clicking Run → Run All Cells twice ({start_timeout_s:.0f} s each)"
        )

    def wait_run_finished(self, timeout_s: float, stall_s: float = 15.0) -> dict:
        """Wait until every non-blank code cell shows a number (or the run stopped at an error).

        Returns the notebook model as nbformat JSON. Fails on a timeout, on a dialog during the run
        (e.g. "Kernel Restarting" after the kernel died), or when the run stops with cells left unrun
        and no error to explain it.
        """
        start = time.monotonic()
        deadline = start + timeout_s
        settled_since: float | None = None
        stalled_since: float | None = None
        snap = self.snapshot()
        while time.monotonic() < deadline:
            snap = self.snapshot()
            if snap.dialogs:
                raise self.fail("a dialog opened while the cells ran: " + " / ".join(snap.dialogs), snap)
            quiet = snap.kernel_state == "idle" and snap.running == 0
            if quiet:
                if not self._unrun_cells(snap):
                    settled_since = settled_since or time.monotonic()
                    if time.monotonic() - settled_since >= 0.75:
                        return self.model_json()
                else:
                    settled_since = None
                    # Run All stops at the first error; the cells below keep a blank prompt.
                    if self.failing_outputs(self.model_json()):
                        return self.model_json()
                    stalled_since = stalled_since or time.monotonic()
                    if time.monotonic() - stalled_since >= stall_s:
                        raise self.fail(
                            f"the kernel is idle but cells {self._unrun_cells(snap)} never ran, "
                            "and no cell shows an error",
                            snap,
                        )
            else:
                settled_since = stalled_since = None
            time.sleep(0.5)
        done = sum(snap.numbered)
        raise self.fail(
            f"the cells did not finish within {timeout_s:.0f} s ({done} of {sum(self.expect_run)} code cells "
            "done); raise REFORMER_LAB_NOTEBOOK_TIMEOUT if the notebook is just slow",
            snap,
        )

    def model_json(self) -> dict:
        nb = self.page.evaluate(_MODEL_JS, self.rel_path)
        if nb is None:
            raise self.fail(
                "cannot read the notebook model: window.jupyterapp is missing or no panel shows this path "
                "(the test server sets LabApp.expose_app_in_browser)"
            )
        return nb

    def failing_outputs(self, nb: dict) -> list[str]:
        """Error outputs, one readable line block each; cells tagged `raises-exception` may raise."""
        found = []
        for index, cell in enumerate(nb.get("cells", [])):
            if cell.get("cell_type") != "code":
                continue
            if "raises-exception" in (cell.get("metadata", {}).get("tags") or []):
                continue
            for out in cell.get("outputs", []):
                if out.get("output_type") != "error":
                    continue
                trace = ANSI.sub("", "\n".join(out.get("traceback") or []))
                last = "\n".join(trace.strip().splitlines()[-6:])
                found.append(
                    f"cell {index} (execution count {cell.get('execution_count')}, "
                    f"source: {_excerpt(_cell_source(cell))!r}): {out.get('ename')}: {out.get('evalue')}\n"
                    f"{last}"
                )
        return found

    def wait_widgets_rendered(self, nb: dict, timeout_s: float = 30.0) -> int:
        """Every widget-view output in the model must render in its cell, without ipywidgets' error text."""
        expected = [
            sum(WIDGET_VIEW_MIME in out.get("data", {}) for out in cell.get("outputs", []))
            if cell.get("cell_type") == "code"
            else 0
            for cell in nb.get("cells", [])
        ]
        deadline = time.monotonic() + timeout_s
        snap = self.snapshot()
        missing: list[int] = []
        while time.monotonic() < deadline:
            snap = self.snapshot()
            if snap.widget_errors:
                raise self.fail("a widget failed to render: " + " / ".join(snap.widget_errors), snap)
            rendered = snap.widgets_rendered + [0] * (len(expected) - len(snap.widgets_rendered))
            missing = [i for i, (want, got) in enumerate(zip(expected, rendered, strict=False)) if got < want]
            if not missing:
                return sum(expected)
            time.sleep(0.25)
        raise self.fail(f"widget outputs of cells {missing} did not render within {timeout_s:.0f} s", snap)

    # -- widgets ----------------------------------------------------------------------------------------

    def tag_rl_widgets(self) -> list[dict]:
        return self.page.evaluate(_TAG_WIDGETS_JS, NOTEBOOK)

    def widget(self, index: int):
        return self.page.locator(f'{NOTEBOOK} [data-rl-test-index="{index}"]')

    def _output_html(self, widget) -> str:
        return widget.locator(".rl-widget-output").first.evaluate("(el) => el.innerHTML")

    def _settled_output_html(self, widget, max_wait_s: float = 3.0) -> str:
        """The output's HTML once two reads 0.3 s apart agree (late rendering must not count as a change)."""
        deadline = time.monotonic() + max_wait_s
        html = self._output_html(widget)
        while time.monotonic() < deadline:
            time.sleep(0.3)
            again = self._output_html(widget)
            if again == html:
                break
            html = again
        return html

    def _wait_output_change(self, widget, before: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._output_html(widget) != before:
                return True
            time.sleep(0.2)
        return False

    def _settle_after_change(self, widget, timeout_s: float) -> None:
        """Wait until the kernel is idle and the output has stopped changing: the first change can be the
        picture of an intermediate slider value, and a screenshot should show the last one."""
        deadline = time.monotonic() + timeout_s
        html = self._output_html(widget)
        while time.monotonic() < deadline:
            time.sleep(0.5)
            again = self._output_html(widget)
            if again == html and self.snapshot().kernel_state == "idle":
                return
            html = again

    def _move_slider(self, handle, key: str, times: int) -> bool:
        """Press `key` on the focused handle; True if the slider's value moved (aria-valuenow)."""
        before = handle.get_attribute("aria-valuenow")
        handle.focus()
        for _ in range(times):
            handle.press(key)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            if handle.get_attribute("aria-valuenow") != before:
                return True
            time.sleep(0.1)
        return False

    def move_control_and_check(self, info: dict, timeout_s: float = 10.0) -> str:
        """Move the widget's first slider (else its first dropdown); the output's HTML must change.

        The slider gets ArrowRight x3 first; if that does not move it (already at its maximum) or the
        output does not change (a step too small to show), End, then Home. Returns a short description
        of what changed the output; raises NotebookCheckError if nothing did.
        """
        label = f"rl-widget #{info['index'] + 1} (cell {info['cell']})"
        if info["outputs"] == 0:
            raise self.fail(f"{label} has no element with the CSS class rl-widget-output")
        widget = self.widget(info["index"])
        widget.scroll_into_view_if_needed()
        before = self._settled_output_html(widget)
        if info["sliders"]:
            handle = widget.locator(".widget-slider .noUi-handle").first
            tried = []
            for key, times in (("ArrowRight", 3), ("End", 1), ("Home", 1)):
                moved = self._move_slider(handle, key, times)
                tried.append(f"{key} x{times}" + ("" if moved else " (slider did not move)"))
                if moved and self._wait_output_change(widget, before, timeout_s):
                    self._settle_after_change(widget, timeout_s)
                    return f"{label}: slider {key} x{times} changed the output"
            raise self.widget_fail(
                f"{label}: moving its first slider did not change .rl-widget-output within "
                f"{timeout_s:.0f} s ({', '.join(tried)})"
            )
        if info["dropdowns"]:
            select = widget.locator(".widget-dropdown select").first
            values = select.evaluate("(s) => [...s.options].map((o) => o.value)")
            current = select.input_value()
            others = [v for v in values if v != current]
            if not others:
                raise self.fail(f"{label}: its first dropdown has a single option; nothing to change")
            select.select_option(others[0])
            if self._wait_output_change(widget, before, timeout_s):
                self._settle_after_change(widget, timeout_s)
                return f"{label}: dropdown -> {others[0]!r} changed the output"
            raise self.widget_fail(
                f"{label}: choosing {others[0]!r} in its first dropdown did not change .rl-widget-output "
                f"within {timeout_s:.0f} s"
            )
        raise self.fail(f"{label} has no slider (.widget-slider) and no dropdown to move")

    # -- screenshots ------------------------------------------------------------------------------------

    def screenshot(self, path: Path, focus_widget: int | None = None) -> None:
        if focus_widget is not None:
            self.widget(focus_widget).evaluate(
                "(el) => el.scrollIntoView({block: el.getBoundingClientRect().height < innerHeight * 0.8"
                " ? 'center' : 'start'})"
            )
            time.sleep(0.3)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=True)
