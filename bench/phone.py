"""Phone benchmark (b): concurrent realtime calls through the Media Streams bridge.

One server process (uvicorn, as in production) bridges every call; a local server speaking the
OpenAI Realtime protocol (its own process) is the model; this process plays Twilio for every
call (one WebSocket each, the documented Media Streams messages). Each call carries 50 frames
of 20 ms μ-law a second each way: the caller's frames go to the model as
``input_audio_buffer.append``, the model's ``response.output_audio.delta``s come back as
Twilio ``media``, with a ``mark`` after every 100 ms of audio (5 frames) that the caller
echoes. Real calls start at unrelated moments, so their 20 ms ticks are spread over the tick:
both generators send each call's frame in one of 10 slots 2 ms apart (``--phase-locked``: all
calls at the same instant, the worst case, where the last frame of a tick waits for the
bridge to get through every call's).

Each frame carries the time it was sent (CLOCK_MONOTONIC, shared by the processes) and a
sequence number, so the receiving end measures the one-way latency through the bridge and
sees every gap. The latency includes the sockets and the two peers' own scheduling on the same
two cores, so it is an upper bound of what the bridge adds. A level passes when the p99 of
both directions is at most 10 ms and no frame was lost. The window opens once every call
hears its model plus a 2 s warm-up; how long admitting all the calls took is its own column
(``all_streaming_after_s``). So that the two load generators take
as little of those cores as they can, both speak RFC 6455 straight on asyncio protocols
(``lean_ws.py``, one event loop each, uvloop) with frames built from pre-encoded parts
(``stamps.py``); the CPU each of the three processes burns per call-second is reported.

Calls are real: each starts with a signed ``POST /twilio/voice/incoming`` for a realtime agent
and connects with the ``<Stream>`` parameters of the TwiML answer.

    .venv/bin/python bench/phone.py [--levels 50,100,200,300] [--seconds 10] [--backend sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import uvloop
from common import SECRET, drop_database, fresh_database, seed_owner, start_server
from lean_ws import ClientPeer, client_frame, connect
from rich.console import Console
from rich.table import Table
from stamps import PHASES, STAMP_CHARS, paced, stamp, unstamp
from twilio.request_validator import RequestValidator

API = "/api/v1"
ROOT = Path(__file__).resolve().parents[1]
ACCOUNT_SID = "AC" + "b" * 32
WARM_UP_SECONDS = 2.0
GOAL_P99_MS = 10.0


# --- set-up ----------------------------------------------------------------------------------


@dataclass
class Line:
    """The realtime agent's number and the connection whose token signs its webhooks."""

    number: str
    auth_token: str


def seed_line(url: str, data_dir: Path, agency_id: str, agent_id: str, client_id: str) -> Line:
    """A Twilio connection and a number for the agent, written as the numbers API would."""
    from demandly.app import create_database
    from demandly.channels.phone.models import PhoneNumber, TwilioConnection
    from demandly.config import Settings
    from demandly.kit.context import Scope

    auth_token = secrets.token_hex(16)
    number = "+4930" + "".join(secrets.choice("0123456789") for _ in range(8))

    async def _seed() -> None:
        db = create_database(Settings(database_url=url, data_dir=data_dir, secret_key=SECRET))
        async with db.session(Scope.for_agency(agency_id)) as session:
            connection = TwilioConnection(
                agency_id=agency_id, name="Bench", account_sid=ACCOUNT_SID, auth_token=auth_token
            )
            session.add(connection)
            await session.flush()
            session.add(
                PhoneNumber(
                    agency_id=agency_id,
                    client_id=client_id,
                    connection_id=connection.id,
                    twilio_sid="PN" + secrets.token_hex(16),
                    number=number,
                    agent_id=agent_id,
                )
            )
            await session.commit()
        await db.dispose()

    asyncio.run(_seed())
    return Line(number, auth_token)


def make_agent(server_url: str, token: str, agency_id: str) -> tuple[str, str]:
    """A published realtime phone agent: (client id, agent id)."""
    with httpx.Client(base_url=server_url, headers={"Authorization": f"Bearer {token}"}) as http:
        client = http.post(f"{API}/clients", json={"agency_id": agency_id, "name": "Bench"}).json()
        agent = http.post(
            f"{API}/agents",
            json={
                "client_id": client["id"],
                "name": "Bench phone",
                "kind": "phone",
                "language": "de",
                "persona_name": "Lena",
                "phone": {"voice_mode": "realtime"},
            },
        ).json()
        http.post(f"{API}/agents/{agent['id']}/publish").raise_for_status()
    return client["id"], agent["id"]


async def place_calls(
    server_url: str, line: Line, count: int
) -> list[tuple[str, dict[str, str], str]]:
    """``count`` signed incoming calls: (stream URL, stream parameters, CallSid) each."""
    url = f"{server_url}/twilio/voice/incoming"
    validator = RequestValidator(line.auth_token)
    calls = []
    async with httpx.AsyncClient(timeout=30) as http:
        for _ in range(count):
            sid = "CA" + secrets.token_hex(16)
            params = {
                "CallSid": sid,
                "AccountSid": ACCOUNT_SID,
                "From": "+4917600000000",
                "To": line.number,
                "CallStatus": "ringing",
                "Direction": "inbound",
                "ApiVersion": "2010-04-01",
            }
            signature = validator.compute_signature(url, params)
            answer = await http.post(url, data=params, headers={"X-Twilio-Signature": signature})
            answer.raise_for_status()
            stream = ET.fromstring(answer.text).find("./Connect/Stream")
            assert stream is not None, answer.text
            parameters = {p.get("name", ""): p.get("value", "") for p in stream}
            calls.append((stream.get("url", ""), parameters, sid))
    return calls


# --- the model (its own process) -----------------------------------------------------------


class StubProcess:
    """The streaming realtime stub (``realtime_stream.py``); its per-second report lines,
    timestamped."""

    def __init__(self, phases: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "realtime_stream.py"), f"--phases={phases}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        self.reports: list[tuple[float, dict[str, object]]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.reports.append((time.monotonic(), json.loads(line)))

    def window(self, began: float, ended: float) -> tuple[list[int], int, int]:
        """Latency samples, frames received and frames lost reported within a window."""
        inside = [r for t, r in self.reports if began < t <= ended]
        before = [r for t, r in self.reports if t <= began]
        latencies = [ns for r in inside for ns in r["latencies"]]  # type: ignore[attr-defined]
        lost = (inside[-1]["lost"] if inside else 0) - (before[-1]["lost"] if before else 0)
        received = (inside[-1]["received"] if inside else 0) - (
            before[-1]["received"] if before else 0
        )
        return latencies, int(received), int(lost)  # type: ignore[call-overload]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


# --- Twilio's side ---------------------------------------------------------------------------


@dataclass
class CallStats:
    latencies_ns: list[int] = field(default_factory=list)
    received: int = 0
    lost: int = 0
    failed: str | None = None
    first_heard: float | None = None  # when the model's first frame reached this call


class TwilioLeg(ClientPeer):
    """One call's Twilio socket: echoes every mark at once (the audio "played"), checks every
    frame's stamp and order, and sends the caller's frames when ``talk`` says."""

    def __init__(self, host: str, path: str, stream_sid: str, measuring: asyncio.Event) -> None:
        super().__init__(host, path)
        self.stream_sid = stream_sid
        self.measuring = measuring
        self.stats = CallStats()
        self.sequence = 0
        self.expected: int | None = None
        self.hanging_up = False
        self.prefix = (
            '{"event":"media","streamSid":"' + stream_sid + '","media":{"track":"inbound",'
        ).encode()
        self.echo = ('{"event":"mark","streamSid":"' + stream_sid + '","mark":{"name":"').encode()
        self.echoes: list[bytes] = []
        self.on_text = self.heard
        self.closed.add_done_callback(self._gone)

    def heard(self, raw: bytes) -> None:
        if b'"event":"mark"' in raw:
            # Echoed with the caller's next frame (the audio before it "plays" meanwhile),
            # as Twilio does: one write a tick, not one per mark.
            self.echoes.append(raw.rsplit(b'"name":"', 1)[1].split(b'"', 1)[0])
            return
        at = raw.find(b'"payload":"')
        if at < 0:
            return
        sent_ns, sequence = unstamp(raw[at + 11 : at + 11 + STAMP_CHARS])
        if self.stats.first_heard is None:
            self.stats.first_heard = time.monotonic()
        if self.measuring.is_set():
            stats = self.stats
            stats.latencies_ns.append(time.monotonic_ns() - sent_ns)
            stats.received += 1
            if self.expected is not None:
                stats.lost += max(0, sequence - self.expected)
        self.expected = sequence + 1

    def speak(self, masks: bytes) -> None:
        """The next 20 ms frame, after the marks echoed since the last one (one write);
        ``masks``: 8 random bytes, the masking keys of the frame and of the first echo."""
        sequence = self.sequence
        self.sequence += 1
        chunk = f'"chunk":"{sequence + 1}","timestamp":"{sequence * 20}","payload":"'.encode()
        frame = self.prefix + chunk + stamp(sequence) + b'"}}'
        if not self.echoes:
            self.write(frame, mask=masks[:4])
            return
        names, self.echoes = self.echoes, []
        keys = masks[4:] + os.urandom(4 * (len(names) - 1))
        echoes = [
            client_frame(self.echo + name + b'"}}', keys[4 * i : 4 * i + 4])
            for i, name in enumerate(names)
        ]
        self.write_frames([*echoes, client_frame(frame, masks[:4])])

    def _gone(self, _: object) -> None:
        if not self.hanging_up:
            self.stats.failed = f"closed {self.close_code or '?'}"


async def open_call(
    url: str, parameters: dict[str, str], call_sid: str, measuring: asyncio.Event
) -> TwilioLeg:
    """Connect as Twilio does (``connected``, ``start`` with the TwiML's parameters)."""
    stream_sid = "MZ" + secrets.token_hex(16)
    leg = await connect(url, lambda host, path: TwilioLeg(host, path, stream_sid, measuring))
    assert isinstance(leg, TwilioLeg)
    leg.write(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}).encode())
    start = {
        "accountSid": ACCOUNT_SID,
        "streamSid": stream_sid,
        "callSid": call_sid,
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        "customParameters": parameters,
    }
    message = {"event": "start", "sequenceNumber": "1", "streamSid": stream_sid, "start": start}
    leg.write(json.dumps(message).encode())
    return leg


async def talk(calls: list[TwilioLeg], stop: asyncio.Event, phases: int) -> None:
    """Every call sends its next 20 ms frame on each tick, in its slot of the tick
    (``stamps.paced``)."""
    slots = [calls[slot::phases] for slot in range(phases)]

    def send_slot(slot: int) -> None:
        speaking = slots[slot]
        masks = os.urandom(8 * len(speaking))  # masking keys for every frame, drawn at once
        for index, call in enumerate(speaking):
            call.speak(masks[8 * index : 8 * index + 8])

    await paced(phases, send_slot, stop.is_set)


def percentile(values: list[int], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] / 1e6 if ordered else float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


ADMISSION_LIMIT_SECONDS = 120.0


def waiting_for_admission(stats: list[CallStats], deadline: float) -> bool:
    """Some call neither hears its model nor has failed yet, and there is time left."""
    pending = any(s.first_heard is None and s.failed is None for s in stats)
    return pending and time.monotonic() < deadline


async def all_streaming(stats: list[CallStats]) -> None:
    """Until every call hears its model (or has failed): the calls are admitted."""
    deadline = time.monotonic() + ADMISSION_LIMIT_SECONDS
    while waiting_for_admission(stats, deadline):  # noqa: ASYNC110 (polls the generators' stats)
        await asyncio.sleep(0.05)


async def run_level(
    server_url: str,
    server_pid: int,
    stub: StubProcess,
    line: Line,
    count: int,
    seconds: float,
    phases: int,
) -> dict[str, object]:
    placed = await place_calls(server_url, line, count)
    measuring, stop = asyncio.Event(), asyncio.Event()
    opened = time.monotonic()
    calls = [await open_call(url, params, sid, measuring) for url, params, sid in placed]
    stats = [call.stats for call in calls]
    talker = asyncio.create_task(talk(calls, stop, phases))
    # Forwarding is measured once every call streams: the caller's frames sent while its
    # stream was still being admitted wait for the model's socket, which is admission time
    # (reported on its own), not forwarding latency.
    await all_streaming(stats)
    admitted = time.monotonic() - opened
    await asyncio.sleep(WARM_UP_SECONDS)
    measuring.set()
    peers = (os.getpid(), stub.process.pid)  # the load: this process (Twilio) and the model
    began, cpu_before = time.monotonic(), cpu_seconds(server_pid)
    peers_before = [cpu_seconds(pid) for pid in peers]
    await asyncio.sleep(seconds)
    ended, cpu_after = time.monotonic(), cpu_seconds(server_pid)
    peers_after = [cpu_seconds(pid) for pid in peers]
    measuring.clear()
    stop.set()
    await talker
    for call in calls:
        call.hanging_up = True
        call.write(json.dumps({"event": "stop", "streamSid": call.stream_sid}).encode())
        call.close()
    await asyncio.sleep(1.5)  # the stub's last report of the window
    up, up_received, up_lost = stub.window(began, ended + 1.0)
    down = [ns for s in stats for ns in s.latencies_ns]
    down_lost = sum(s.lost for s in stats)
    failed = sum(1 for s in stats if s.failed)
    call_seconds = max(1.0, sum(s.received for s in stats) / 50)
    row: dict[str, object] = {
        "calls": count,
        "all_streaming_after_s": round(admitted, 2),
        "up_frames": up_received,
        "up_p50_ms": round(percentile(up, 0.5), 2),
        "up_p99_ms": round(percentile(up, 0.99), 2),
        "up_lost": up_lost,
        "down_frames": sum(s.received for s in stats),
        "down_p50_ms": round(percentile(down, 0.5), 2),
        "down_p99_ms": round(percentile(down, 0.99), 2),
        "down_lost": down_lost,
        "failed_calls": failed,
        "server_cpu_pct": round(100 * (cpu_after - cpu_before) / (ended - began)),
        # The load generators share the machine's cores: near 100 % each, their own queueing
        # is in the latencies (the figures are then an upper bound of the bridge's).
        "twilio_sim_cpu_pct": round(100 * (peers_after[0] - peers_before[0]) / (ended - began)),
        "model_stub_cpu_pct": round(100 * (peers_after[1] - peers_before[1]) / (ended - began)),
        # The bridge's CPU per second of call actually carried (50 frames each way): what
        # one core holds when nothing else runs is 1000 / this. Then the generators' own.
        "cpu_ms_per_call_s": round(1000 * (cpu_after - cpu_before) / call_seconds, 2),
        "twilio_ms_per_call_s": round(1000 * (peers_after[0] - peers_before[0]) / call_seconds, 2),
        "stub_ms_per_call_s": round(1000 * (peers_after[1] - peers_before[1]) / call_seconds, 2),
    }
    row["ok"] = (
        max(float(row["up_p99_ms"]), float(row["down_p99_ms"])) <= GOAL_P99_MS  # type: ignore[arg-type]
        and up_lost == 0
        and down_lost == 0
        and failed == 0
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--levels", default="50,100,200,300")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--backend", default="sqlite")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--phase-locked",
        action="store_true",
        help="every call's frame at the same instant of the tick (the worst case), "
        f"instead of the calls spread over {PHASES} slots of it",
    )
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    phases = 1 if args.phase_locked else PHASES

    folder = Path(tempfile.mkdtemp(prefix="phone-"))
    url = fresh_database(args.backend, folder)
    agency_id, token = seed_owner(url, folder)
    stub = StubProcess(phases)
    server = start_server(url, folder, {"DEMANDLY_REALTIME_URL": stub.url})
    rows: list[dict[str, object]] = []
    try:
        client_id, agent_id = make_agent(server.url, token, agency_id)
        line = seed_line(url, folder, agency_id, agent_id, client_id)
        for count in levels:
            rows.append(
                uvloop.run(
                    run_level(
                        server.url, server.process.pid, stub, line, count, args.seconds, phases
                    )
                )
            )
            print(rows[-1], flush=True)
    finally:
        server.stop()
        stub.stop()
        drop_database(url)

    title = (
        f"Phone (b): concurrent media streams ({platform.node()}, {os.cpu_count()} CPUs, "
        f"{datetime.now(UTC):%Y-%m-%d}, {args.backend}, "
        f"{'phase-locked' if phases == 1 else f'{phases} phases'})"
    )
    table = Table(title=title)
    for column in rows[0]:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    Console().print(table)
    passing = [int(r["calls"]) for r in rows if r["ok"]]  # type: ignore[call-overload]
    print(f"largest passing level: {max(passing) if passing else 'none'}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
