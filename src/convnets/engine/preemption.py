"""Checkpoints within an epoch, and stopping cleanly when the machine is taken away.

SLURM (``--signal``, and at the end of a job's time) and Kubernetes (before evicting a
pod) send SIGTERM or SIGUSR1 some seconds before they kill a job. While a run trains,
:class:`StopSignals` turns either into a request that the loop honours at the next
optimizer step boundary: every process commits the checkpoint together (the request is
agreed by a collective, since a scheduler may signal the processes at slightly different
moments), and the run ends with :class:`Preempted`, one line that says where it stopped.
``--save-every N`` commits such a checkpoint every N optimizer steps as well, so that a
SIGKILL loses at most N steps.

A checkpoint within an epoch records the position in the epoch's global sample order
(:class:`~convnets.engine.distributed.EpochOrder`): the resumed run starts the epoch
there, on any number of processes.
"""
from __future__ import annotations

import signal
import threading
from typing import Callable

import torch
import torch.distributed as dist

from ..errors import ConvnetsError
from . import distributed as ddp

__all__ = ["STOP_SIGNALS", "Preempted", "StopSignals", "StepBoundary"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class Preempted(ConvnetsError):
    """The run stopped on a signal after committing a checkpoint; ``--resume`` continues."""


class StopSignals:
    """While active, SIGTERM and SIGUSR1 set ``received`` (the signal's name) instead of
    ending the process; the previous handlers come back on exit. Outside the main thread
    (where Python cannot handle signals) it does nothing."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, object] = {}

    def _note(self, signum: int, frame) -> None:
        self.received = signal.Signals(signum).name

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._note)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


class StepBoundary:
    """Called by the training pass after each optimizer step of the epoch: commits a
    checkpoint every ``save_every`` steps of the run, and when any process received a stop
    signal; returns whether to stop. ``commit(position)`` writes the checkpoint, where
    ``position`` is the number of samples of the epoch's global order trained on."""

    def __init__(self, signals: StopSignals, save_every: int, env: ddp.DistEnv,
                 device: torch.device, commit: Callable[[int, int], None]) -> None:
        self.signals, self.save_every, self.env, self.device = signals, save_every, env, device
        self.commit = commit
        self.first_step = 0            # the run's step count at the epoch's first sample
        self.start = 0                 # the position the epoch's pass began at
        self.samples_per_step = 1      # the global batch times the accumulation steps
        self.stopped_by: str | None = None

    def begin(self, run_step: int, start: int, samples_per_step: int) -> None:
        self.first_step, self.start, self.samples_per_step = run_step, start, samples_per_step

    def signal_received(self) -> str | None:
        """The stop signal any process received (its name), or None; a collective."""
        mine = self.signals.received
        if not self.env.distributed:
            return mine
        flag = torch.tensor([mine is not None], dtype=torch.int32, device=self.device)
        dist.all_reduce(flag)
        return (mine or "a signal to another process") if flag.item() else None

    def __call__(self, steps: int) -> bool:
        """After ``steps`` optimizer steps of this pass."""
        run_step = self.first_step + steps
        received = self.signal_received()
        if received is None and not (self.save_every and run_step % self.save_every == 0):
            return False
        self.commit(self.start + steps * self.samples_per_step, run_step)
        self.stopped_by = received
        return received is not None
