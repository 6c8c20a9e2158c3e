"""`.kbucket/kbnode.json`: load, save, legacy migration, start-up preparation, questions, listen settings.

The file is written exactly as the original writes it (`JSON.stringify(obj, null, 4)`, no trailing
newline), atomically. Field meanings: spec §1.2. Start-up order: spec §1.4.
"""
from __future__ import annotations

import json
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, TextIO
from urllib.parse import urlsplit

from kbtools.atomic import write_atomic
from kbtools.errors import RuntimeFailure, UsageError
from kbtools.node.identity import (
    KBUCKET_DIR, NodeIdentity, create_identity, keys_missing, load_identity,
)

NETWORK_TYPE = "kbucket"
NODE_TYPES = ("leaf", "hub")
CONFIG_NAME = "kbnode.json"
SETTINGS_NAME = ".kbucket-settings"
ORIGINAL_HUB_URL = "https://kbucket.flatironinstitute.org"
DEFAULT_HUB_PORT = "3240"
DEFAULT_LEAF_PORT_RANGE = "2000-3000"
PASSCODE_ENV = "KBUCKET_HUB_PASSCODE"

Config = dict[str, Any]


def config_path(node_dir: Path) -> Path:
    return Path(node_dir) / KBUCKET_DIR / CONFIG_NAME


def dump_config(config: Mapping[str, Any]) -> str:
    """The text of `JSON.stringify(config, null, 4)` (no trailing newline)."""
    return json.dumps(config, indent=4, ensure_ascii=False)


def load_config(node_dir: Path) -> Config:
    """Read kbnode.json (an empty dict when the file does not exist)."""
    path = config_path(node_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        obj = json.loads(text)
    except ValueError as e:
        raise RuntimeFailure(f"{path}: not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise RuntimeFailure(f"{path}: not a JSON object")
    return obj


def save_config(node_dir: Path, config: Mapping[str, Any]) -> None:
    """Write kbnode.json atomically in the original's text form."""
    write_atomic(config_path(node_dir), dump_config(config))


def read_node_id(node_dir: Path) -> str | None:
    """The node id recorded in kbnode.json, or None (no file, unreadable, or no id yet)."""
    try:
        config = load_config(node_dir)
    except RuntimeFailure:
        return None
    node_id = config.get("node_id") or config.get("kbnode_id")
    return node_id if isinstance(node_id, str) and node_id else None


def migrate_legacy_fields(config: Config) -> Config:
    """Legacy `kbnode_type` ("share"/"hub") -> `node_type`, `kbnode_id` -> `node_id`; network_type forced."""
    if "node_type" not in config and "kbnode_type" in config:
        legacy = config.pop("kbnode_type")
        config["node_type"] = "leaf" if legacy == "share" else legacy
    if "node_id" not in config and "kbnode_id" in config:
        config["node_id"] = config.pop("kbnode_id")
    config["network_type"] = NETWORK_TYPE
    return config


@dataclass
class PreparedNode:
    """A node directory ready to run: its config (already saved) and identity."""

    node_dir: Path
    config: Config
    identity: NodeIdentity
    messages: list[str] = field(default_factory=list)  # the original's console lines, for stderr

    @property
    def node_id(self) -> str:
        return self.identity.node_id


def prepare_node(node_dir: Path, node_type: str) -> PreparedNode:
    """Steps 1-3 of spec §1.4: create `.kbucket/`, keys and id when missing, migrate, check the type.

    Keys are generated only when both PEM files are missing; an original node directory is used as is.
    """
    if node_type not in NODE_TYPES:
        raise ValueError(f"node_type must be one of {NODE_TYPES}")
    node_dir = Path(node_dir).resolve()
    messages: list[str] = []
    kb = node_dir / KBUCKET_DIR
    if not config_path(node_dir).exists():
        messages.append(f"Creating {node_type} configuration in {kb} ...")
        kb.mkdir(parents=True, exist_ok=True)
        save_config(node_dir, {"node_type": node_type})
    config = migrate_legacy_fields(load_config(node_dir))
    if keys_missing(node_dir):
        if config.get("node_id"):
            raise RuntimeFailure(
                "Cannot generate public/private keys because node id has already been set.")
        messages.append("Creating private/public keys ...")
        identity = create_identity(node_dir)
        config["node_id"] = identity.node_id
    else:
        identity = load_identity(node_dir)
        config.setdefault("node_id", identity.node_id)
    if config.get("node_id") != identity.node_id:
        raise RuntimeFailure(f"node_id in {config_path(node_dir)} ({config.get('node_id')}) does not "
                             f"match public.pem ({identity.node_id})")
    if not config.get("node_type"):
        raise RuntimeFailure(f"node_type is missing in {config_path(node_dir)}")
    if config["node_type"] != node_type:
        raise RuntimeFailure(f"Incorrect type for hemlock node: {config['node_type']}")
    save_config(node_dir, config)
    return PreparedNode(node_dir, config, identity, messages)


# ---------------------------------------------------------------- questions (spec §1.5, §1.6)

_EMAIL = re.compile(r"^[^\s@]{1,64}@[^\s@.]+(\.[^\s@.]+)+$")


def is_valid_email(text: str) -> bool:
    return len(text) <= 254 and bool(_EMAIL.match(text))


def _name_check(label: str) -> Callable[[str], str | None]:
    def check(x: str) -> str | None:
        if not x:
            return f"{label} must not be empty."
        if len(x) > 100:
            return f"{label} is too long."
        return None
    return check


def _check_description(x: str) -> str | None:
    return "Description is too long." if len(x) > 1000 else None


def _check_email(x: str) -> str | None:
    return None if is_valid_email(x) else "Invalid email."


def _check_url(x: str) -> str | None:
    ok = x in ("", ".") or x.startswith("http://") or x.startswith("https://")
    return None if ok else "Invalid url."


def _check_port(x: str) -> str | None:
    return None if x.isdigit() and 0 < int(x) < 65536 else "Invalid port."


def _check_yes(x: str) -> str | None:
    return None if x == "yes" else f"Invalid string: {x}"


RESEARCH_REFUSAL = ("This system should only be used to share resources for scientific research "
                    "purposes.")


@dataclass(frozen=True)
class Question:
    """One interactive question: `prompt` already carries the `[kbucket] ` prefix."""

    name: str
    prompt: str
    default: str = ""
    validate: Callable[[str], str | None] | None = None
    optional: bool = False
    refusal: str | None = None  # answering "no" prints this and stops (scientific_research)


def load_user_settings(home: Path | None = None) -> dict[str, Any]:
    """`~/.kbucket-settings` (default_owner, default_owner_email), or {}."""
    path = (home or Path.home()) / SETTINGS_NAME
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


def save_user_settings(owner: str, owner_email: str, home: Path | None = None) -> None:
    path = (home or Path.home()) / SETTINGS_NAME
    settings = load_user_settings(home)
    settings.update(default_owner=owner, default_owner_email=owner_email)
    write_atomic(path, dump_config(settings))


def node_questions(node_type: str, node_dir: Path, config: Mapping[str, Any],
                   env: Mapping[str, str] | None = None,
                   settings: Mapping[str, Any] | None = None) -> list[Question]:
    """The original's questions for a leaf or a hub, defaults resolved (config value first)."""
    env = os.environ if env is None else env
    settings = settings or {}
    p = f"[{NETWORK_TYPE}] "
    what = "share" if node_type == "leaf" else "hub"

    def d(name: str, fallback: Any = "") -> str:
        value = config.get(name)
        if value in (None, ""):
            value = fallback
        return "" if value is None else str(value)

    hub_url_default = env.get("KBUCKET_URL") or ORIGINAL_HUB_URL
    purpose = "sharing these resources" if node_type == "leaf" else "hosting this hub"
    qs = [
        Question("name", f"{p}Name for this {what}:", d("name", Path(node_dir).resolve().name),
                 _name_check("Name")),
        Question("scientific_research",
                 f"{p}Are you {purpose} for scientific research purposes (yes/no)?",
                 d("scientific_research"), _check_yes, refusal=RESEARCH_REFUSAL),
        Question("description", f"{p}Brief description of this {what}:", d("description"),
                 _check_description),
        Question("owner", f"{p}Owner's name (i.e., your full name):",
                 d("owner", settings.get("default_owner", "")), _name_check("Owner string")),
        Question("owner_email", f"{p}Owner's email (i.e., your email):",
                 d("owner_email", settings.get("default_owner_email", "")), _check_email),
    ]
    if node_type == "leaf":
        qs += [
            Question("confirm_share", f"{p}Share all resources associated with the directory "
                     f"{Path(node_dir).resolve()}? (yes/no)", d("confirm_share")),
            Question("listen_url", f"{p}Listen url for this share (use . for http://localhost:[port]):",
                     d("listen_url", "."), _check_url),
            Question("parent_hub_url", f"{p}Parent hub url:", d("parent_hub_url", hub_url_default),
                     _check_url),
        ]
    else:
        qs += [
            Question("listen_port", f"{p}Listen port for this hub:", d("listen_port", DEFAULT_HUB_PORT),
                     _check_port),
            Question("passcode", f"{p}Passcode for this hub:", d("passcode"), optional=True),
            Question("listen_url", f"{p}Listen url for this hub (use . for http://localhost:[port]):",
                     d("listen_url", "."), _check_url),
            Question("parent_hub_url", f"{p}Parent hub url (use . for none):",
                     d("parent_hub_url", hub_url_default), _check_url),
        ]
    qs.append(Question("parent_hub_passcode", f"{p}Parent hub passcode:", d("parent_hub_passcode"),
                       optional=True))
    return qs


def resolve_auto(questions: list[Question], config: Config) -> Config:
    """`--auto`: every answer is its default; a missing required one is a usage error (exit 2)."""
    for q in questions:
        if not q.default and not q.optional:
            raise UsageError(f"Aborting due to missing required field: {q.name} "
                             f"(set it in .kbucket/{CONFIG_NAME})")
        config[q.name] = q.default
    return config


class Refused(UsageError):
    """The user answered "no" to the scientific-research question."""


def ask_questions(questions: list[Question], config: Config, input_stream: TextIO,
                  output_stream: TextIO) -> Config:
    """Ask each question on the given streams until its answer validates; store answers in config.

    An empty answer takes the default. End of input is a usage error (never a hang).
    """
    for q in questions:
        while True:
            shown = f" ({q.default})" if q.default else ""
            output_stream.write(f"? {q.prompt}{shown} ")
            output_stream.flush()
            line = input_stream.readline()
            if line == "":
                raise UsageError(f"no answer for {q.name} (end of input)")
            answer = line.rstrip("\r\n").strip() or q.default
            if q.refusal is not None and answer == "no":
                output_stream.write(q.refusal + "\n")
                raise Refused(q.refusal)
            problem = q.validate(answer) if q.validate else None
            if problem is None:
                config[q.name] = answer
                break
            output_stream.write(f">> {problem}\n")
    return config


def resolve_parent_hub_passcode(config: Mapping[str, Any], env: Mapping[str, str] | None = None,
                                passcode_file: Path | None = None) -> str:
    """The parent hub passcode: from `passcode_file` if given, else env KBUCKET_HUB_PASSCODE,
    else kbnode.json `parent_hub_passcode`, else "". Never from argv."""
    env = os.environ if env is None else env
    if passcode_file is not None:
        try:
            return Path(passcode_file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as e:
            raise UsageError(f"cannot read passcode file {passcode_file}: {e.strerror}") from None
    if env.get(PASSCODE_ENV):
        return env[PASSCODE_ENV]
    value = config.get("parent_hub_passcode") or ""
    return str(value)


# ---------------------------------------------------------------- listening

def parse_port_range(text: str) -> tuple[int, int]:
    """`lo-hi` or a single port."""
    try:
        if "-" in text:
            lo_s, hi_s = text.split("-", 1)
            lo, hi = int(lo_s), int(hi_s)
        else:
            lo = hi = int(text)
    except ValueError:
        raise UsageError(f"HEMLOCK_LEAF_PORT_RANGE must be lo-hi or a port, not {text!r}") from None
    if not (0 < lo <= hi < 65536):
        raise UsageError(f"HEMLOCK_LEAF_PORT_RANGE out of range: {text!r}")
    return lo, hi


def explicit_port(url: str) -> int | None:
    """The port written in an http(s) URL, or None (`.`, empty, or no port)."""
    if not url or url == ".":
        return None
    try:
        return urlsplit(url).port
    except ValueError:
        raise UsageError(f"invalid port in listen_url {url!r}") from None


def port_is_free(bind: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((bind, port))
        except OSError:
            return False
    return True


def share_listen_port(config: Mapping[str, Any], bind: str = "127.0.0.1",
                      env: Mapping[str, str] | None = None) -> int:
    """The share's port: the one in listen_url, else the first free port in HEMLOCK_LEAF_PORT_RANGE."""
    env = os.environ if env is None else env
    port = explicit_port(str(config.get("listen_url") or ""))
    if port is not None:
        return port
    lo, hi = parse_port_range(env.get("HEMLOCK_LEAF_PORT_RANGE") or DEFAULT_LEAF_PORT_RANGE)
    for candidate in range(lo, hi + 1):
        if port_is_free(bind, candidate):
            return candidate
    raise RuntimeFailure(f"no free port in {lo}-{hi} on {bind}")


def hub_listen_port(config: Mapping[str, Any]) -> int:
    value = str(config.get("listen_port") or "")
    if _check_port(value) is not None:
        raise UsageError(f"listen_port must be a port number, not {value!r}")
    return int(value)


def resolve_listen_url(listen_url: str | None, port: int) -> str:
    """`.` or empty means `http://localhost:<port>`; anything else is kept (trailing / removed)."""
    if not listen_url or listen_url == ".":
        return f"http://localhost:{port}"
    return listen_url.rstrip("/")


def parent_hub_url(config: Mapping[str, Any]) -> str | None:
    """The parent hub URL, or None when there is none (`.` or empty)."""
    url = str(config.get("parent_hub_url") or "")
    return None if url in ("", ".") else url


def websocket_url(hub_url: str) -> str:
    """Spec §2.1: `http:` becomes `ws:`, anything else `wss:`; the path is kept."""
    parts = urlsplit(hub_url)
    scheme = "ws" if parts.scheme == "http" else "wss"
    path = parts.path or "/"
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{parts.netloc}{path}{query}"
