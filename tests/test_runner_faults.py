"""Fault injection: the experiment runner killed at random moments loses nothing and leaves no broken file.

``python -m reformer_lab.experiments duplication --setting lsh-2 --scale tiny`` is SIGKILLed again and again, at
random delays, right after it finishes a checkpoint, halfway through writing a checkpoint's temporary file,
between writing (and fsyncing) that file and renaming it, and inside its JSON writes; after every kill, every
JSON file on disk must parse and every checkpoint must load, and rerunning the same command until it finishes
must give the JSON record of a run never interrupted (bitwise, but for times, dates and git state).

Speed: importing torch and warming up its first calls takes seconds, a tiny run one second after that. So this
file runs itself as a *driver* process (``python tests/test_runner_faults.py``) that imports the runner once,
runs the reference, then forks one child per attempt; each child is a whole runner process (its own ``main``,
files and exit) that the driver kills. The kill plan comes from a fixed seed; one thread throughout.
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED = 20240613
MIN_KILLS = 22
MODES = ("delay", "after-checkpoint", "before-rename", "mid-write", "json-write")
#: How often each kind of kill is planned; the plan is shuffled with SEED.
PLAN = {"delay": 6, "after-checkpoint": 5, "before-rename": 5, "mid-write": 5, "json-write": 3}
CHECKPOINT_MODES = ("after-checkpoint", "before-rename", "mid-write")
CHECKPOINT_STEPS = (10, 20)  # the tiny scale: 20 steps, a checkpoint every 10
ARGV = ["duplication", "--setting", "lsh-2", "--scale", "tiny", "--no-progress"]
IGNORED = ("wall_time_s", "date", "resumed_from", "git_commit", "git_dirty", "checkpoint")


def comparable(record: dict) -> dict:
    """The record without what legitimately differs between runs: times, dates, git state, paths."""
    record = {k: v for k, v in record.items() if k not in IGNORED}
    record["metrics"] = {"train": [{k: v for k, v in r.items() if k != "seconds"} for r in record["metrics"]["train"]],
                         "eval": record["metrics"]["eval"]}
    return record


# ---------------------------------------------------------------------------------------------------------
# the driver (runs in its own process: python tests/test_runner_faults.py WORKDIR REPORT)


def _child(out: Path, mode: str, k: int, marks: int) -> None:
    """In the forked child: install the kill hooks of ``mode``, run the runner's main, exit with its status."""
    import torch

    import reformer_lab.train as train_module
    from reformer_lab.measure.experiments import main

    log = os.open(out.parent / "attempt.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(log, 1)
    os.dup2(log, 2)
    real_save, real_replace, real_torch_save = train_module._save, os.replace, torch.save
    counts = {"save": 0, "json": 0}

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def save(path, state):  # markers: B when a checkpoint write starts, E when it is on disk
        counts["save"] += 1
        os.write(marks, b"B")
        real_save(path, state)
        os.write(marks, b"E")

    def replace(src, dst):
        if str(dst).endswith(".pt") and mode == "before-rename" and counts["save"] == k:
            die()  # the temporary file is whole and fsynced, the rename has not happened
        if str(dst).endswith(".json"):
            counts["json"] += 1
            if mode == "json-write" and counts["json"] == k:
                die()
        return real_replace(src, dst)

    def torch_save(obj, f, *args, **kwargs):
        if mode == "mid-write" and counts["save"] == k and hasattr(f, "write"):
            import io

            buffer = io.BytesIO()
            real_torch_save(obj, buffer, *args, **kwargs)
            data = buffer.getvalue()
            f.write(data[: len(data) // 2])
            f.flush()
            die()  # half a checkpoint in the temporary file
        return real_torch_save(obj, f, *args, **kwargs)

    train_module._save, os.replace, torch.save = save, replace, torch_save
    code = 1
    try:
        code = main([*ARGV, "--out", str(out)])
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _attempt(out: Path, mode: str, k: int, delay: float) -> dict:
    """Fork one runner; kill it per ``mode``; return how it ended and whether a kill hit a checkpoint write."""
    read_marks, write_marks = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_marks)
        _child(out, mode, k, write_marks)
    os.close(write_marks)
    started, marks, killed_by_us = time.monotonic(), b"", False
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        ready, _, _ = select.select([read_marks], [], [], 0.005)
        if ready:
            marks += os.read(read_marks, 64)
        if (mode == "delay" and time.monotonic() - started >= delay) or \
                (mode == "after-checkpoint" and marks.count(b"E") >= k):
            os.kill(pid, signal.SIGKILL)
            killed_by_us = True
            _, status = os.waitpid(pid, 0)
            break
    while select.select([read_marks], [], [], 0)[0]:
        chunk = os.read(read_marks, 64)
        if not chunk:
            break
        marks += chunk
    os.close(read_marks)
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    in_save = killed and marks.count(b"B") > marks.count(b"E")
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
    return {"mode": mode, "k": k, "delay": round(delay, 3), "killed": killed, "by_driver": killed_by_us,
            "in_checkpoint_write": in_save, "code": code, "marks": marks.decode()}


def _check_files(directory: Path) -> list[str]:
    """Every JSON parses, every checkpoint loads; returns the problems."""
    from reformer_lab.train import load_checkpoint

    problems = []
    for path in sorted(directory.iterdir()):
        try:
            if path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".pt":
                load_checkpoint(path)
        except Exception as error:  # noqa: BLE001 - every failure is a finding
            problems.append(f"{path.name}: {type(error).__name__}: {error}")
    return problems


def _step(checkpoint: Path) -> int:
    from reformer_lab.train import load_checkpoint

    return int(load_checkpoint(checkpoint)["step"]) if checkpoint.is_file() else 0


class _CommandLine:
    """The literal command, as its own processes: SIGKILLed as soon as its first checkpoint is on disk, then rerun
    to its end. Both run beside the driver's own work (a watcher thread kills the first; it ends before any fork)."""

    def __init__(self, directory: Path) -> None:
        import threading

        self.directory = directory
        self.command = [sys.executable, "-m", "reformer_lab.experiments", *ARGV, "--out", str(directory / "r.json")]
        self.first = subprocess.Popen(self.command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.watcher = threading.Thread(target=self._kill_at_first_checkpoint)
        self.watcher.start()

    def _kill_at_first_checkpoint(self) -> None:
        while self.first.poll() is None and not (self.directory / "r.pt").exists():
            time.sleep(0.002)
        self.first.kill()
        self.first.wait()

    def resume(self, problems: list[str]) -> None:
        from reformer_lab.train import load_checkpoint

        self.watcher.join()
        self.killed = self.first.returncode == -signal.SIGKILL
        if not self.killed:
            problems.append(f"command line: the runner was not killed (exit {self.first.returncode})")
        problems += [f"command line, after the kill: {p}" for p in _check_files(self.directory)]
        if load_checkpoint(self.directory / "r.pt")["step"] != CHECKPOINT_STEPS[0]:
            problems.append("command line: the checkpoint on disk at the kill is not step 10")
        self.second = subprocess.Popen(self.command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                       text=True)

    def finish(self, reference: dict, problems: list[str]) -> int:
        _, err = self.second.communicate(timeout=180)
        if self.second.returncode != 0:
            problems.append(f"command line: the resumed run failed: {err[-2000:]}")
        elif comparable(json.loads((self.directory / "r.json").read_text())) != reference:
            problems.append("command line: the resumed record differs from the reference")
        return int(self.killed)


def drive(workdir: Path) -> dict:
    import torch

    torch.set_num_threads(1)
    from reformer_lab.measure.experiments import main

    started = time.monotonic()
    command_line = _CommandLine(workdir / "cli")
    main([*ARGV, "--out", str(workdir / "reference" / "r.json")])  # the reference; also warms torch up
    reference = comparable(json.loads((workdir / "reference" / "r.json").read_text()))
    problems: list[str] = []
    command_line.resume(problems)
    (workdir / "timing").mkdir()
    warm = time.monotonic()
    timing = _attempt(workdir / "timing" / "r.json", "none", 0, 0.0)  # how long a warm, uninterrupted run takes
    run_seconds = time.monotonic() - warm
    assert timing["code"] == 0, (workdir / "timing" / "attempt.log").read_text()
    rng = random.Random(SEED)
    plan = [mode for mode, count in PLAN.items() for _ in range(count)]
    rng.shuffle(plan)
    attempts, sequences, kills = [], 0, 0
    while kills < MIN_KILLS or sequences == 0:
        sequences += 1
        directory = workdir / f"sequence-{sequences}"
        directory.mkdir()
        out = directory / "lsh-2-tiny.json"
        while True:
            left = sum(1 for s in CHECKPOINT_STEPS if s > _step(directory / "lsh-2-tiny.pt"))
            # the next planned kill that can happen now (no checkpoint is written once training is done)
            usable = [i for i, m in enumerate(plan) if left or m not in CHECKPOINT_MODES]
            mode = plan.pop(usable[0]) if kills < MIN_KILLS and usable else "delay" if kills < MIN_KILLS else "none"
            k = rng.randint(1, left) if mode in CHECKPOINT_MODES else rng.randint(1, 2) if mode == "json-write" else 0
            delay = rng.uniform(0.0, 0.8 * run_seconds) if mode == "delay" else 0.0
            result = _attempt(out, mode, k, delay)
            result["sequence"] = sequences
            attempts.append(result)
            kills += result["killed"]
            problems += [f"sequence {sequences}, after {mode}: {p}" for p in _check_files(directory)]
            if result["code"] not in (0, -signal.SIGKILL):
                problems.append(f"sequence {sequences}: the runner failed ({result}): "
                                f"{(directory / 'attempt.log').read_text()[-2000:]}")
                break
            if result["code"] == 0:
                record = comparable(json.loads(out.read_text()))
                if record != reference:
                    diff = sorted(k for k in set(record) | set(reference) if record.get(k) != reference.get(k))
                    problems.append(f"sequence {sequences}: the final record differs from the reference in {diff}")
                leftovers = [p.name for p in directory.iterdir() if p.suffix == ".tmp"]
                if leftovers:
                    problems.append(f"sequence {sequences}: temporary files left behind: {leftovers}")
                break
        if sequences > 3 * MIN_KILLS:  # a runaway loop: every attempt finished without a kill
            problems.append("no kills land: the plan cannot reach MIN_KILLS")
            break
    kills += command_line.finish(reference, problems)
    return {"attempts": attempts, "problems": problems, "sequences": sequences, "kills": kills,
            "checkpoint_write_kills": sum(a["in_checkpoint_write"] for a in attempts),
            "run_seconds": run_seconds, "seconds": time.monotonic() - started}


# ---------------------------------------------------------------------------------------------------------
# the test


def test_killed_runs_resume_to_the_uninterrupted_record_and_leave_no_broken_file(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "REFORMER_LAB_PROGRESS": "0"}
    done = subprocess.run([sys.executable, __file__, str(tmp_path / "work"), str(report_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(report_path.read_text())
    assert report["problems"] == []
    assert report["kills"] >= MIN_KILLS >= 20
    assert report["checkpoint_write_kills"] >= 5, report["attempts"]
    modes = {a["mode"] for a in report["attempts"] if a["killed"]}
    assert modes >= set(MODES), modes  # every kind of kill happened at least once
    assert report["sequences"] >= 3  # several runs were driven to their end through kills


if __name__ == "__main__":
    work, report_file = Path(sys.argv[1]), Path(sys.argv[2])
    work.mkdir(parents=True)
    sys.path.insert(0, str(ROOT))
    Path(report_file).write_text(json.dumps(drive(work), indent=1))
