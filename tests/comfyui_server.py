"""Run a real ComfyUI for integration tests and talk to it over HTTP on 127.0.0.1.

Nothing is written into the ComfyUI checkout: models, inputs, outputs, the user database and
custom_nodes live in a temporary base directory (``--base-directory``). Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[1]  # the checkout under test, linked into custom_nodes
START_TIMEOUT = 180  # ComfyUI imports torch and every core node; a busy 2-core machine needs a while
RUN_TIMEOUT = 120
SKIP_REASON = "COMFYUI_DIR is not set: the ComfyUI integration tests need a ComfyUI checkout to start"
FRONTEND_ONLY_NODES = frozenset({"Note", "MarkdownNote"})
MUTED, BYPASSED = 2, 4  # a UI node's "mode"
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
EXTRA_WIDGET_VALUE = ("image_upload", "video_upload", "control_after_generate")  # options that store 2 values


def comfyui_python(comfyui_dir: Path) -> str:
    """The Python of ``$COMFYUI_DIR/.venv`` when there is one, else the one running the tests."""
    venv = comfyui_dir / ".venv"
    for candidate in (venv / "bin" / "python", venv / "Scripts" / "python.exe"):
        if candidate.is_file():
            return str(candidate)
    return sys.executable


def skip_unless_comfyui(module_name: str) -> None:
    """Skip the calling test module, saying why, when COMFYUI_DIR names no ComfyUI checkout."""
    if not os.environ.get("COMFYUI_DIR"):
        import pytest

        print(f"\nSKIP {module_name}: {SKIP_REASON}")
        pytest.skip(SKIP_REASON, allow_module_level=True)


def offline_server(
    base_dir: Path, extra_model_paths: Path | None = None, extra_args: tuple[str, ...] = ()
) -> ComfyUIServer:
    """A ComfyUI from $COMFYUI_DIR with its data under ``base_dir`` and the Hugging Face Hub off;
    ``extra_args`` are more of ComfyUI's command-line flags (``--force-fp32``)."""
    return ComfyUIServer(
        Path(os.environ["COMFYUI_DIR"]).resolve(),
        base_dir,
        extra_model_paths=extra_model_paths,
        extra_args=extra_args,
        env={
            "HF_HUB_OFFLINE": "1",
            "HF_HOME": str(base_dir / "hf_home"),
            "HF_HUB_CACHE": str(base_dir / "hf_home" / "hub"),
            "PYTHONDONTWRITEBYTECODE": "1",
        },
    )


def online_server(base_dir: Path, hub_endpoint: str) -> ComfyUIServer:
    """A ComfyUI from $COMFYUI_DIR with its data under ``base_dir`` and the Hub at ``hub_endpoint``.

    huggingface_hub reads HF_ENDPOINT once, when it is imported, so it is set in ComfyUI's environment
    before the process starts (and no HF_TOKEN of the test machine is passed on)."""
    return ComfyUIServer(
        Path(os.environ["COMFYUI_DIR"]).resolve(),
        base_dir,
        env={
            "HF_HUB_OFFLINE": "0",
            "HF_ENDPOINT": hub_endpoint,
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HOME": str(base_dir / "hf_home"),
            "HF_HUB_CACHE": str(base_dir / "hf_home" / "hub"),
            "PYTHONDONTWRITEBYTECODE": "1",
        },
    )


def pack_base(tmp_path_factory, name: str) -> Path:
    """A fresh ComfyUI base directory for one test module: this checkout linked in as
    ``custom_nodes/depthstyle`` and an empty ``input`` folder."""
    base = tmp_path_factory.mktemp(name)
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / "depthstyle").symlink_to(REPO, target_is_directory=True)
    (base / "input").mkdir()
    return base


def message(entry: Mapping[str, Any], kind: str) -> dict | None:
    """The data of the first status message of ``kind`` in a /history entry, or None."""
    return next((data for name, data in entry["status"]["messages"] if name == kind), None)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class ComfyUIServer:
    """One ComfyUI process started from ``comfyui_dir`` with its data under ``base_dir``."""

    def __init__(
        self,
        comfyui_dir: Path,
        base_dir: Path,
        *,
        extra_model_paths: Path | None = None,
        env: Mapping[str, str] | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.comfyui_dir = comfyui_dir
        self.base_dir = base_dir
        self.extra_model_paths = extra_model_paths
        self.extra_args = extra_args
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE_"))}
        self.env = {**inherited, **(env or {})}  # no Hub setting (token, endpoint) of the test machine
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log_path = base_dir / "comfyui.log"
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        """The command line: CPU only, loopback only, all data under the base directory."""
        cmd = [comfyui_python(self.comfyui_dir), "main.py", "--cpu", "--disable-auto-launch"]
        cmd += ["--listen", HOST, "--port", str(self.port), "--base-directory", str(self.base_dir)]
        if self.extra_model_paths is not None:
            cmd += ["--extra-model-paths-config", str(self.extra_model_paths)]
        return [*cmd, *self.extra_args]

    def start(self, timeout: float) -> None:
        """Start ComfyUI and wait until it answers; on failure stop it and raise with its log."""
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command(), cwd=self.comfyui_dir, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with code {self.process.returncode}:\n{self.log_tail()}")
            try:
                self.get_json("/system_stats", timeout=2)
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"ComfyUI did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def __enter__(self) -> ComfyUIServer:
        self.start(timeout=START_TIMEOUT)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self, timeout: float = 20) -> None:
        """Terminate ComfyUI, killing it if it does not exit in ``timeout`` seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)

    def log_tail(self, chars: int = 6000) -> str:
        """The end of ComfyUI's console output."""
        if not self.log_path.is_file():
            return "<no log>"
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]

    def request(self, path: str, body: Any = None, timeout: float = 30) -> tuple[int, bytes]:
        """GET (or POST ``body`` as JSON) ``path``; returns the status and the raw answer."""
        data = None if body is None else json.dumps(body).encode()
        headers = {} if body is None else {"Content-Type": "application/json"}
        req = urllib.request.Request(self.url + path, data=data, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def get_json(self, path: str, timeout: float = 30) -> Any:
        """GET ``path`` and decode the JSON answer; any status but 200 raises."""
        status, raw = self.request(path, timeout=timeout)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}: {raw[:2000]!r}")
        return json.loads(raw)

    def queue_prompt(self, prompt: Mapping[str, Any]) -> str:
        """POST an API-format graph to /prompt and return its prompt id; a rejected graph raises."""
        status, raw = self.request("/prompt", {"prompt": prompt, "client_id": "depthstyle-tests"})
        if status != 200:
            raise RuntimeError(f"/prompt answered {status}: {raw.decode(errors='replace')}")
        return json.loads(raw)["prompt_id"]

    def wait_for_history(self, prompt_id: str, timeout: float) -> dict[str, Any]:
        """Poll /history until the prompt has finished (successfully or not) and return its entry."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.get_json(f"/history/{prompt_id}").get(prompt_id)
            if entry is not None and entry.get("status", {}).get("completed") is not None:
                return entry
            time.sleep(0.25)
        raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout:.0f} s:\n{self.log_tail()}")

    def run(self, prompt: Mapping[str, Any], timeout: float = RUN_TIMEOUT) -> dict[str, Any]:
        """Queue ``prompt`` and return its /history entry once it has finished."""
        return self.wait_for_history(self.queue_prompt(prompt), timeout=timeout)

    def wait_until_running(self, prompt_id: str, timeout: float) -> None:
        """Poll /queue until ``prompt_id`` is the one executing."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            running = self.get_json("/queue")["queue_running"]
            if any(item[1] == prompt_id for item in running):
                return
            time.sleep(0.05)
        raise TimeoutError(f"prompt {prompt_id} did not start within {timeout:.0f} s")

    def upload(self, path: Path, name: str) -> str:
        """Upload a file into ComfyUI's input folder as the frontend's upload button does (POST
        /upload/image, also for videos) and return the name a Load node then shows."""
        import requests

        with open(path, "rb") as handle:
            answer = requests.post(
                self.url + "/upload/image",
                files={"image": (name, handle)},
                data={"type": "input"},
                timeout=30,
            )
        answer.raise_for_status()
        return answer.json()["name"]

    def view(self, image: Mapping[str, str]) -> bytes:
        """The bytes of an image that a history entry lists (``filename``, ``subfolder``, ``type``)."""
        query = urllib.parse.urlencode({k: image[k] for k in ("filename", "subfolder", "type")})
        status, raw = self.request(f"/view?{query}")
        if status != 200:
            raise RuntimeError(f"/view?{query} answered {status}")
        return raw


def ui_to_api(workflow: Mapping[str, Any], object_info: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Convert a UI-format workflow into the API-format graph ComfyUI would queue for it.

    Widget values are stored by position; ``object_info``'s input order says which input each one
    belongs to (combos with an image or video upload button or a control-after-generate widget store one
    extra value).
    Frontend-only nodes such as notes are dropped, and so are muted nodes (mode 2, "never") with every
    input that links to them, as the frontend's graphToPrompt does. Bypassed nodes (mode 4), which the
    frontend replaces by a pass-through, are not modelled.
    """
    if any(node.get("mode") == BYPASSED for node in workflow["nodes"]):
        raise NotImplementedError("bypassed nodes (mode 4) are not modelled")
    muted = {node["id"] for node in workflow["nodes"] if node.get("mode") == MUTED}
    sources = {link[0]: (str(link[1]), link[2]) for link in workflow["links"] if link[1] not in muted}
    graph: dict[str, dict[str, Any]] = {}
    for node in workflow["nodes"]:
        if node["type"] in FRONTEND_ONLY_NODES or node["id"] in muted:
            continue
        info = object_info[node["type"]]
        links = [i for i in node.get("inputs", []) if i.get("link") in sources]
        linked = {i["name"]: list(sources[i["link"]]) for i in links}
        values = list(node.get("widgets_values", []))
        inputs: dict[str, Any] = {}
        for section in ("required", "optional"):
            specs = info["input"].get(section, {})
            for name in info["input_order"].get(section, []):
                kind, options = specs[name][0], (specs[name][1] if len(specs[name]) > 1 else {})
                if isinstance(kind, list) or kind in WIDGET_TYPES:
                    value = values.pop(0) if values else None
                    if any(options.get(key) for key in EXTRA_WIDGET_VALUE):
                        values = values[1:]
                    inputs[name] = linked.get(name, value)
                elif name in linked:
                    inputs[name] = linked[name]
        graph[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return graph
