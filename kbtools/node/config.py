"""`.kbucket/kbnode.json`: load, save, legacy migration, start-up preparation, questions, listen settings.

The file is written exactly as the original writes it (`JSON.stringify(obj, null, 4)`, no trailing
newline), atomically. Field meanings: spec §1.2. Start-up order: spec §1.4.

Set-up (`configure`): the answers are asked once, on the terminal (`/dev/tty`, never stdin, which may
carry data), and kept in kbnode.json; options answer questions without a terminal; secrets come from
the environment or a file only. A kbnode.json that cannot be used is a configuration error (exit 2)
naming the file.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Mapping, TextIO
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
DEFAULT_HUB_PORT = "3240"
DEFAULT_LEAF_PORT_RANGE = "2000-3000"
HUB_URL_ENV = "KBUCKET_URL"  # the default parent hub (there is no built-in one: the original is gone)
PASSCODE_ENV = "KBUCKET_HUB_PASSCODE"  # the parent hub's passcode
CHILD_PASSCODE_ENV = "KBUCKET_CHILD_PASSCODE"  # a hub's own passcode, the one its children present
# Fields that hold text when present (null is taken as absent); listen_port may also be a number.
TEXT_FIELDS = ("node_type", "kbnode_type", "node_id", "kbnode_id", "network_type", "name",
               "scientific_research", "description", "owner", "owner_email", "confirm_share",
               "listen_url", "parent_hub_url", "passcode", "parent_hub_passcode")

Config = dict[str, Any]


def config_path(node_dir: Path) -> Path:
    return Path(node_dir) / KBUCKET_DIR / CONFIG_NAME


def dump_config(config: Mapping[str, Any]) -> str:
    """The text of `JSON.stringify(config, null, 4)` (no trailing newline)."""
    return json.dumps(config, indent=4, ensure_ascii=False)


def _json_type(value: Any) -> str:
    names = {bool: "true/false", int: "a number", float: "a number", list: "a list", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def load_config(node_dir: Path) -> Config:
    """Read kbnode.json (an empty dict when the file does not exist).

    A file that is not UTF-8 JSON holding an object with text fields is a UsageError (exit 2) that
    names the file and what is wrong; a file that cannot be read at all is a RuntimeFailure (3).
    """
    path = config_path(node_dir)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise RuntimeFailure(f"cannot read {path}: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
                         "fix or remove the file") from None
    try:
        obj = json.loads(text)
    except ValueError as e:
        raise UsageError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise UsageError(f"{path}: must hold a JSON object, not {_json_type(obj)}")
    for key in TEXT_FIELDS:
        value = obj.get(key)
        if value is not None and not isinstance(value, str):
            raise UsageError(f"{path}: {key} must be a string, not {_json_type(value)}")
    port = obj.get("listen_port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, (str, int))):
        raise UsageError(f"{path}: listen_port must be a port number, not {_json_type(port)}")
    return {k: v for k, v in obj.items() if v is not None}


def save_config(node_dir: Path, config: Mapping[str, Any]) -> None:
    """Write kbnode.json atomically in the original's text form."""
    write_atomic(config_path(node_dir), dump_config(config))


def read_node_id(node_dir: Path) -> str | None:
    """The node id recorded in kbnode.json, or None (no file, unreadable, or no id yet)."""
    try:
        config = load_config(node_dir)
    except (RuntimeFailure, UsageError):
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
            raise UsageError(
                "Cannot generate public/private keys because node id has already been set "
                f"(in {config_path(node_dir)}).")
        messages.append("Creating private/public keys ...")
        identity = create_identity(node_dir)
        config["node_id"] = identity.node_id
    else:
        identity = load_identity(node_dir)
        config.setdefault("node_id", identity.node_id)
    if config.get("node_id") != identity.node_id:
        raise UsageError(f"node_id in {config_path(node_dir)} ({config.get('node_id')}) does not "
                         f"match public.pem ({identity.node_id})")
    if not config.get("node_type"):
        raise UsageError(f"node_type is missing in {config_path(node_dir)}")
    if config["node_type"] != node_type:
        raise UsageError(f"Incorrect type for hemlock node: {config['node_type']} "
                         f"(in {config_path(node_dir)}; this command runs a {node_type})")
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
    """A port number; 0 (kbtools) means any free port."""
    return None if x.isdigit() and int(x) < 65536 else "Invalid port."


def _check_yes(x: str) -> str | None:
    return None if x == "yes" else f"Invalid string: {x}"


def _has_parent(config: Mapping[str, Any]) -> bool:
    return parent_hub_url(config) is not None


RESEARCH_REFUSAL = ("This system should only be used to share resources for scientific research "
                    "purposes.")


@dataclass(frozen=True)
class Question:
    """One question: `prompt` already carries the `[kbucket] ` prefix.

    `option` is how to answer it without a terminal (a command-line option, or for a secret an
    environment variable); `ask_if` skips the question when it does not apply.
    """

    name: str
    prompt: str
    default: str = ""
    validate: Callable[[str], str | None] | None = None
    optional: bool = False
    refusal: str | None = None  # answering "no" prints this and stops (scientific_research)
    option: str = ""
    ask_if: Callable[[Mapping[str, Any]], bool] | None = None


@dataclass(frozen=True)
class AnswerOption:
    """A command-line option that answers questions (`metavar` None: a flag answering "yes")."""

    flag: str
    metavar: str | None
    fields: tuple[str, ...]
    help: str
    node_types: tuple[str, ...] = NODE_TYPES

    @property
    def usage(self) -> str:
        return f"{self.flag} {self.metavar}" if self.metavar else self.flag


# Every non-secret answer has an option; secrets have an environment variable (or a file), never argv.
ANSWER_OPTIONS = (
    AnswerOption("--name", "NAME", ("name",), "its name (default: the directory's name)"),
    AnswerOption("--agree", None, ("scientific_research", "confirm_share"),
                 "answer yes to the questions: shared for scientific research purposes, and "
                 "(kb-host) share everything in the directory"),
    AnswerOption("--description", "TEXT", ("description",), "a brief description"),
    AnswerOption("--owner", "NAME", ("owner",), "the owner's full name"),
    AnswerOption("--email", "EMAIL", ("owner_email",), "the owner's email"),
    AnswerOption("--port", "PORT", ("listen_port",), "the port to listen on (0: any free port; "
                 f"default {DEFAULT_HUB_PORT})", ("hub",)),
    AnswerOption("--listen-url", "URL", ("listen_url",),
                 "the URL others reach it at (default .: http://localhost:PORT)"),
    AnswerOption("--hub", "URL", ("parent_hub_url",), f"the parent hub (default: ${HUB_URL_ENV})",
                 ("leaf",)),
    AnswerOption("--parent", "URL", ("parent_hub_url",),
                 f"a parent hub, . for none (default: ${HUB_URL_ENV}, else none)", ("hub",)),
)
SECRET_SOURCES = {"parent_hub_passcode": f"${PASSCODE_ENV} or --passcode-file FILE",
                  "passcode": f"${CHILD_PASSCODE_ENV}"}


def add_answer_options(parser: argparse.ArgumentParser, node_type: str) -> None:
    """The options that answer the set-up questions of a leaf or a hub."""
    group = parser.add_argument_group("set-up answers (kept in .kbucket/kbnode.json)")
    for opt in ANSWER_OPTIONS:
        if node_type not in opt.node_types:
            continue
        dest = "answer_" + opt.flag.lstrip("-").replace("-", "_")
        if opt.metavar is None:
            group.add_argument(opt.flag, dest=dest, action="store_true", help=opt.help)
        else:
            group.add_argument(opt.flag, dest=dest, metavar=opt.metavar, help=opt.help)


def answers_from_args(args: argparse.Namespace, node_type: str) -> dict[str, str]:
    """{field: answer} for the answer options given on the command line (not yet validated)."""
    answers: dict[str, str] = {}
    for opt in ANSWER_OPTIONS:
        value = getattr(args, "answer_" + opt.flag.lstrip("-").replace("-", "_"), None)
        if node_type not in opt.node_types or value in (None, False):
            continue
        for name in opt.fields:
            if name != "confirm_share" or node_type == "leaf":
                answers[name] = "yes" if value is True else str(value)
    return answers


def _option_for(name: str, node_type: str) -> str:
    if name in SECRET_SOURCES:
        return SECRET_SOURCES[name]
    return next((o.usage for o in ANSWER_OPTIONS if name in o.fields and node_type in o.node_types), "")


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
    """The original's questions for a leaf or a hub, defaults resolved (config value first).

    The parent hub defaults to $KBUCKET_URL; without it a share's question has no default and a
    hub's is `.` (none). The description may be empty (kbtools; the original's --auto refused that).
    """
    env = os.environ if env is None else env
    settings = settings or {}
    p = f"[{NETWORK_TYPE}] "
    what = "share" if node_type == "leaf" else "hub"

    def d(name: str, fallback: Any = "") -> str:
        value = config.get(name)
        if value in (None, ""):
            value = fallback
        return "" if value is None else str(value)

    def q(name: str, prompt: str, default: str = "", validate: Callable[[str], str | None] | None = None,
          **kw: Any) -> Question:
        return Question(name, p + prompt, default, validate, option=_option_for(name, node_type), **kw)

    hub_url_default = env.get(HUB_URL_ENV) or ("" if node_type == "leaf" else ".")
    purpose = "sharing these resources" if node_type == "leaf" else "hosting this hub"
    qs = [
        q("name", f"Name for this {what}:", d("name", Path(node_dir).resolve().name),
          _name_check("Name")),
        q("scientific_research", f"Are you {purpose} for scientific research purposes (yes/no)?",
          d("scientific_research"), _check_yes, refusal=RESEARCH_REFUSAL),
        q("description", f"Brief description of this {what}:", d("description"), _check_description,
          optional=True),
        q("owner", "Owner's name (i.e., your full name):",
          d("owner", settings.get("default_owner", "")), _name_check("Owner string")),
        q("owner_email", "Owner's email (i.e., your email):",
          d("owner_email", settings.get("default_owner_email", "")), _check_email),
    ]
    if node_type == "leaf":
        qs += [
            q("confirm_share", f"Share all resources associated with the directory "
              f"{Path(node_dir).resolve()}? (yes/no)", d("confirm_share")),
            q("listen_url", "Listen url for this share (use . for http://localhost:[port]):",
              d("listen_url", "."), _check_url),
            q("parent_hub_url", "Parent hub url:", d("parent_hub_url", hub_url_default), _check_url),
        ]
    else:
        qs += [
            q("listen_port", "Listen port for this hub:", d("listen_port", DEFAULT_HUB_PORT),
              _check_port),
            q("passcode", "Passcode for this hub:", d("passcode"), optional=True),
            q("listen_url", "Listen url for this hub (use . for http://localhost:[port]):",
              d("listen_url", "."), _check_url),
            q("parent_hub_url", "Parent hub url (use . for none):",
              d("parent_hub_url", hub_url_default), _check_url),
        ]
    qs.append(q("parent_hub_passcode", "Parent hub passcode:", d("parent_hub_passcode"),
                optional=True, ask_if=_has_parent))
    return qs


def missing_answers(questions: list[Question], config: Mapping[str, Any]) -> list[Question]:
    """The required questions kbnode.json has no answer for: set-up is not complete."""
    return [q for q in questions if not q.optional and config.get(q.name) in (None, "")]


def resolve_auto(questions: list[Question], config: Config, why: str = "--auto asks nothing") -> Config:
    """Every answer is its default; required ones without any stop with one line saying what to
    pass (a usage error, exit 2)."""
    missing = [q for q in questions if not q.default and not q.optional]
    if missing:
        options = " ".join(dict.fromkeys(q.option for q in missing if q.option))
        raise UsageError(f"Aborting due to missing required field: "
                         f"{', '.join(q.name for q in missing)} ({why}): pass {options} "
                         f"or set them in {KBUCKET_DIR}/{CONFIG_NAME}")
    for q in questions:
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
        if q.ask_if is not None and not q.ask_if(config):
            continue
        while True:
            shown = f" ({q.default})" if q.default else ""
            output_stream.write(f"? {q.prompt}{shown} ")
            output_stream.flush()
            line = input_stream.readline()
            if line == "":
                output_stream.write("\n")
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


def open_terminal() -> tuple[TextIO, TextIO] | None:
    """The controlling terminal, for reading answers and writing prompts (as ssh and sudo ask), or
    None when the process has none (cron, systemd, a detached session)."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return None
    return (os.fdopen(fd, "r", encoding="utf-8", errors="replace"),
            os.fdopen(os.dup(fd), "w", encoding="utf-8"))


def configure(node: PreparedNode, answers: Mapping[str, str], *, auto: bool = False,
              reconfigure: bool = False, secrets: Collection[str] = (),
              env: Mapping[str, str] | None = None, home: Path | None = None,
              before_asking: Callable[[], None] | None = None) -> bool:
    """Set-up: apply the answers given as options, ask on the terminal what is missing (the first
    run) or everything (`reconfigure`), take defaults for the rest; save kbnode.json.

    `secrets` are questions answered out of band (environment, file): never asked, never stored.
    Without a terminal, or with `auto`, nothing is asked. Returns True if questions were asked.
    `before_asking` runs once before the first question (e.g. to let a command upstream in a
    pipeline finish drawing on the same terminal).
    """
    node_type = str(node.config.get("node_type"))
    config = node.config
    if auto and reconfigure:
        raise UsageError("--reconfigure asks the questions again; it cannot go with --auto")
    probe = node_questions(node_type, node.node_dir, {}, env={}, settings={})
    for q in probe:
        if q.name in answers:
            problem = q.validate(answers[q.name]) if q.validate else None
            if problem:
                raise UsageError(f"{q.option.split()[0]}: {problem}")
            config[q.name] = answers[q.name]
    questions = node_questions(node_type, node.node_dir, config, env=env,
                               settings=load_user_settings(home))
    asked = False
    if reconfigure or missing_answers(questions, config):
        terminal = None if auto else open_terminal()
        if terminal is None:
            if reconfigure:
                raise UsageError("--reconfigure asks on the terminal, and there is none")
            resolve_auto(questions, config, "--auto asks nothing" if auto else "no terminal to ask on")
        else:
            reader, writer = terminal
            try:
                if before_asking is not None:
                    before_asking()
                ask_questions([q for q in questions if q.name not in answers and q.name not in secrets],
                              config, reader, writer)
            finally:
                reader.close()
                writer.close()
            asked = True
            try:
                save_user_settings(str(config.get("owner", "")), str(config.get("owner_email", "")),
                                   home)
            except OSError:
                pass  # defaults for the next set-up only
    else:
        resolve_auto(questions, config)
    save_config(node.node_dir, config)
    return asked


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
    """`listen_port`; 0 means any free port."""
    value = str(config.get("listen_port", "")).strip()
    if _check_port(value) is not None:
        raise UsageError(f"listen_port must be a port number (0 for any free port), not {value!r}")
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
