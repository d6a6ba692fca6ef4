"""Load-test GET /predict/<symbol> on a real uvicorn server (loopback only, bounded time).

Starts ``uvicorn api.main:app`` on 127.0.0.1 (a free port) against a models dir, offline,
waits for /ready, loads every model once, then drives the symbols round-robin at each
concurrency level for a fixed time with httpx.AsyncClient. Prints a table and one JSON
line: requests/s, p50/p95/p99 latency, errors, server RSS. ``--profile`` first times
the pieces of one prediction in-process (history, features, inference, serialisation).
``--post-unseen ROWS`` POSTs each symbol's last ROWS bars under a name no model has
(``<SYMBOL>-U``) instead: the universe network's forecast of a symbol it never saw.

Examples:
    python scripts/bench_api.py                            # models/mamba, 10 s per level
    python scripts/bench_api.py --models-dir /tmp/m --duration 5 --concurrency 1,16
    python scripts/bench_api.py --history-ttl 0            # recompute every forecast
    python scripts/bench_api.py --profile
    python scripts/bench_api.py --models-dir models/universe --post-unseen 1100 --profile
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 120.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--models-dir", default="models/mamba")
    parser.add_argument("--symbols", help="comma list (default: every model, up to --max-symbols)")
    parser.add_argument("--max-symbols", type=int, default=20)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per level")
    parser.add_argument("--concurrency", default="1,16", help="comma list of levels")
    parser.add_argument(
        "--client-procs",
        type=int,
        default=1,
        help="load-generator processes, users spread over them (1 is best on 2 cores)",
    )
    parser.add_argument("--history-ttl", type=float, default=60.0, help="MAMBA_API_HISTORY_TTL_S")
    parser.add_argument("--profile", action="store_true", help="time the pieces of /predict first")
    parser.add_argument(
        "--post-unseen",
        type=int,
        metavar="ROWS",
        help="POST each symbol's last ROWS bars as a symbol without a model (universe network)",
    )
    return parser.parse_args(argv)


Request = tuple[str, dict | None]  # a path, and the JSON body of a POST (None: a GET)


def requests_for(symbols: list[str], unseen_rows: int | None) -> list[Request]:
    """A GET per symbol, or a POST of its last ``unseen_rows`` bars under a new name."""
    if unseen_rows is None:
        return [(f"/predict/{symbol}", None) for symbol in symbols]
    from ml.state_space.data.sources import load_history

    requests = []
    for symbol in symbols:
        frame = load_history(symbol, offline=True).iloc[-unseen_rows:]
        columns = [c for c in ("open", "high", "low", "close", "volume") if c in frame]
        rows = [
            {"date": str(day.date()), **{c: float(frame.at[day, c]) for c in columns}}
            for day in frame.index
        ]
        requests.append((f"/predict/{symbol}-U", {"prices": rows}))
    return requests


async def send(client: httpx.AsyncClient, request: Request) -> httpx.Response:
    path, body = request
    return await (client.get(path) if body is None else client.post(path, json=body))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(models_dir: Path, port: int, n_models: int, ttl: float) -> subprocess.Popen:
    env = {
        **os.environ,
        "MAMBA_API_MODELS_DIR": str(models_dir),
        "MAMBA_API_OFFLINE": "1",
        "MAMBA_API_HISTORY_TTL_S": str(ttl),
        "MAMBA_API_MODEL_CACHE_SIZE": str(max(n_models, 1)),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "api.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    return subprocess.Popen(command, cwd=ROOT, env=env)


async def wait_ready(client: httpx.AsyncClient, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"uvicorn exited with code {server.returncode}")
        with contextlib.suppress(httpx.TransportError):
            if (await client.get("/ready")).status_code == 200:
                return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"server not ready after {READY_TIMEOUT_S:.0f} s")


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


async def users(
    base_url: str, requests: list[Request], offsets: list[int], start_at: float, duration: float
) -> tuple[list[float], int, float]:
    """One user per offset, each with its own keep-alive connection (one shared httpx
    pool costs ~2x the client CPU at 16), issuing requests back to back from wall-clock
    ``start_at`` for ``duration`` s. Returns latencies, errors and this process's CPU s."""
    latencies: list[float] = []
    errors = 0

    async def user(offset: int) -> None:
        nonlocal errors
        async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
            await client.get("/health")  # connect before the clock starts
            await asyncio.sleep(max(0.0, start_at - time.time()))
            deadline, i = time.perf_counter() + duration, offset
            while time.perf_counter() < deadline:
                request = requests[i % len(requests)]
                i += 1
                started = time.perf_counter()
                try:
                    ok = (await send(client, request)).status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - started)
                errors += not ok

    cpu = time.process_time()
    await asyncio.gather(*(user(k) for k in offsets))
    return latencies, errors, time.process_time() - cpu


def client_process(*args: object) -> tuple[list[float], int, float]:
    return run_loop(users(*args))


def drive(
    pool: ProcessPoolExecutor,
    procs: int,
    base_url: str,
    requests: list[Request],
    concurrency: int,
    duration: float,
    pid: int,
) -> dict:
    """``concurrency`` users spread over up to ``procs`` client processes for ``duration`` s."""
    n_procs = min(procs, concurrency)
    start_at = time.time() + 1.0  # every process connected and waiting by then
    futures = [
        pool.submit(
            client_process,
            base_url,
            requests,
            list(range(k, concurrency, n_procs)),
            start_at,
            duration,
        )
        for k in range(n_procs)
    ]
    time.sleep(max(0.0, start_at - time.time()))
    server_cpu = cpu_seconds(pid)
    outcomes = [future.result() for future in futures]
    server_cpu = cpu_seconds(pid) - server_cpu
    load_1min = os.getloadavg()[0]  # includes this benchmark's own processes
    latencies = [latency for outcome in outcomes for latency in outcome[0]]
    client_cpu = sum(outcome[2] for outcome in outcomes)
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "concurrency": concurrency,
        "client_processes": n_procs,
        "requests": len(latencies),
        "rps": round(len(latencies) / duration, 1),
        "p50_ms": round(1e3 * cuts[49], 2),
        "p95_ms": round(1e3 * cuts[94], 2),
        "p99_ms": round(1e3 * cuts[98], 2),
        "errors": sum(outcome[1] for outcome in outcomes),
        "server_cpu_ms_per_request": round(1e3 * server_cpu / len(latencies), 3),
        "client_cpu_ms_per_request": round(1e3 * client_cpu / len(latencies), 3),
        "load_1min": round(load_1min, 2),
    }


def rss_mb(pid: int) -> float:
    process = psutil.Process(pid)
    total = process.memory_info().rss + sum(
        child.memory_info().rss for child in process.children(recursive=True)
    )
    return round(total / 2**20, 1)


async def warm_up(base_url: str, server: subprocess.Popen, requests: list[Request]) -> tuple:
    """Wait for /ready, then send every request once (loading its model)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60.0) as client:
        await wait_ready(client, server)
        rss_idle = rss_mb(server.pid)
        started = time.perf_counter()
        for request in requests:
            response = await send(client, request)
            if response.status_code != 200:
                raise RuntimeError(f"warm-up {request[0]}: {response.status_code} {response.text}")
        return rss_idle, time.perf_counter() - started


def bench(args: argparse.Namespace, models_dir: Path, symbols: list[str]) -> dict:
    levels = [int(level) for level in args.concurrency.split(",")]
    requests = requests_for(symbols, args.post_unseen)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = start_server(models_dir, port, len(symbols), args.history_ttl)
    spawn = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(args.client_procs, mp_context=spawn) as pool:
            rss_idle, first_requests_s = run_loop(warm_up(base_url, server, requests))
            # a short run at the highest level first, so measurements start in steady state
            procs = args.client_procs
            drive(pool, procs, base_url, requests, max(levels), min(2.0, args.duration), server.pid)
            results = [
                drive(pool, procs, base_url, requests, c, args.duration, server.pid) for c in levels
            ]
        return {
            "models_dir": str(models_dir),
            "symbols": len(symbols),
            "post_unseen_rows": args.post_unseen,
            "history_ttl_s": args.history_ttl,
            "duration_s": args.duration,
            "client_loop": run_loop(loop_name()),
            "cold_load_s_per_model": round(first_requests_s / len(symbols), 3),
            "rss_mb_idle": rss_idle,
            "rss_mb_loaded": rss_mb(server.pid),
            "cpus": os.cpu_count(),
            "levels": results,
        }
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


async def loop_name() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after one warm-up call, in ms."""
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return round(1e3 * statistics.median(times), 3)


def profile_pieces(models_dir: Path, symbols: list[str], repeats: int = 200) -> list[dict]:
    """Median time of each step of one uncached prediction, in-process, per symbol."""
    from api.schemas import ForecastResponse
    from ml.state_space.data.sources import load_history
    from ml.state_space.forecast import ServedModel
    from ml.state_space.registry import ModelRegistry

    timed = functools.partial(median_ms, repeats=repeats)
    registry, rows = ModelRegistry(models_dir), []
    for symbol in symbols:
        started = time.perf_counter()
        forecaster = ServedModel.from_artifacts(registry.load_artifacts(symbol), {})
        load_s = time.perf_counter() - started
        model = forecaster.model
        prices = load_history(symbol, offline=True)
        tail = prices.iloc[-forecaster.history_rows :][forecaster.price_columns]
        features = model.engineer.transform(tail)[forecaster.card.features.names].to_numpy()
        window = model.normalizer.transform(features)[None, -model.config.model.seq_len :]
        forecast = forecaster.predict(prices, symbol)
        response = ForecastResponse.from_forecast(forecast)
        rows.append(
            {
                "symbol": symbol,
                "model_load_s": round(load_s, 3),
                "history_ms": timed(lambda s=symbol: load_history(s, offline=True)),
                "features_ms": timed(lambda m=model, t=tail: m.engineer.transform(t)),
                "normalise_ms": timed(lambda m=model, x=features: m.normalizer.transform(x)),
                "inference_ms": timed(lambda m=model, w=window: m.infer_scaled(w)),
                "fallback_ms": timed(
                    lambda m=model, p=prices: m.fallback.predict_quantiles(p, p.index[-1:])
                ),
                "predict_total_ms": timed(lambda f=forecaster, p=prices, s=symbol: f.predict(p, s)),
                "response_ms": timed(lambda f=forecast: ForecastResponse.from_forecast(f)),
                "json_ms": timed(response.model_dump_json),
            }
        )
    return rows


def profile_unseen(models_dir: Path, symbols: list[str], rows: int, repeats: int = 20) -> list:
    """Median time of each step of one unseen symbol's forecast, in-process, per symbol:
    the network gated on the symbol's prices (features, windows, the gate on the
    validation windows and both fallback fits), the fallback fit alone, the forecast."""
    from ml.state_space.data.sources import load_history
    from ml.state_space.forecast import UniverseNetwork
    from ml.state_space.registry import SHARED_NAME, ModelRegistry

    timed = functools.partial(median_ms, repeats=repeats)
    shared = ModelRegistry(models_dir).shared().load_artifacts(SHARED_NAME)
    universe = UniverseNetwork.from_artifacts(shared, {})
    profile = []
    for symbol in symbols:
        prices = load_history(symbol, offline=True).iloc[-rows:].copy()
        prices.attrs = {"source": "client"}  # as POSTed: no bundled symbol behind it
        name = f"{symbol}-U"
        served = universe.served_for(name, prices)
        profile.append(
            {
                "symbol": name,
                "rows": len(prices),
                "gate_ms": timed(lambda p=prices, n=name: universe.served_for(n, p)),
                "fallback_fit_ms": timed(lambda m=served.model, p=prices: m._new_fallback().fit(p)),
                "predict_ms": timed(lambda f=served, p=prices, n=name: f.predict(p, n)),
                "total_ms": timed(lambda p=prices, n=name: universe.predict(p, n)),
            }
        )
    return profile


def run_loop(coroutine):
    """Run on uvloop when installed (as uvicorn does); the result records which loop ran."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def print_table(result: dict) -> None:
    print(
        f"\n{result['symbols']} models, history TTL {result['history_ttl_s']} s, "
        f"{result['duration_s']} s per level, {result['cpus']} CPUs, "
        f"client loop {result['client_loop']}"
    )
    print(
        f"server RSS: {result['rss_mb_idle']} MB idle, {result['rss_mb_loaded']} MB loaded; "
        f"first request per model {result['cold_load_s_per_model']} s"
    )
    columns = (
        "concurrency",
        "client_processes",
        "requests",
        "rps",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "errors",
        "server_cpu_ms_per_request",
        "client_cpu_ms_per_request",
        "load_1min",
    )
    print(" ".join(f"{name:>{max(len(name), 8)}}" for name in columns))
    for row in result["levels"]:
        print(" ".join(f"{row[name]:>{max(len(name), 8)}}" for name in columns))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from ml.state_space.registry import ModelRegistry

    models_dir = Path(args.models_dir).resolve()
    available = ModelRegistry(models_dir).symbols()
    symbols = args.symbols.split(",") if args.symbols else available[: args.max_symbols]
    if not symbols:
        print(
            f"error: no models under {models_dir}; train some with "
            "scripts/train_mamba_models.py --models-dir ...",
            file=sys.stderr,
        )
        return 2
    if args.profile and args.post_unseen:
        for row in profile_unseen(models_dir, symbols[:3], args.post_unseen):
            print("profile", json.dumps(row))
    elif args.profile:
        for row in profile_pieces(models_dir, symbols[:3]):
            print("profile", json.dumps(row))
    result = bench(args, models_dir, symbols)
    print_table(result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
