"""Real coding agents, non-interactively, against gemgate and the fake
Google: the prompt scripts the fake's tool call (`[call NAME {args}]`), the
agent runs the tool and sends its result back, and the fake's answer quotes
what the tool returned."""

import json
import os
import platform
import subprocess
from pathlib import Path

import pytest

from conftest import CLIENT_KEY, fake_key

JS = Path(__file__).parent / "js"
ARCH = {"x86_64": "x64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
# The npm package's native binary (its postinstall, which npm may not run,
# only copies it into place).
CLAUDE = JS / "node_modules" / "@anthropic-ai" / f"claude-code-linux-{ARCH}" / "claude"


def agent_binary(path: Path) -> Path:
    if not path.exists():
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=JS, check=True)
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path} is missing after npm install")
        pytest.skip(f"{path} is not installed")
    return path


def test_claude_code_completes_a_one_tool_task(gemgate, tmp_path):
    claude = agent_binary(CLAUDE)
    server = gemgate([fake_key("ok", 1)])
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    hello = work / "hello.txt"
    hello.write_text("the answer is 42\n")
    env = dict(
        os.environ,
        HOME=str(home),
        ANTHROPIC_BASE_URL=server.base_url,
        ANTHROPIC_AUTH_TOKEN=CLIENT_KEY,
        ANTHROPIC_MODEL="claude-sonnet-4-5",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
    )
    prompt = f'Read the file. [call Read {{"file_path": "{hello}"}}]'
    result = subprocess.run(
        [str(claude), "-p", prompt, "--output-format", "json", "--max-turns", "3"],
        cwd=work, env=env, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = json.loads(result.stdout)
    assert out["is_error"] is False, out
    assert out["num_turns"] == 2, "one tool call, then the answer"
    # The fake's answer quotes the Read tool's output: the file's line.
    assert "Read returned" in out["result"] and "the answer is 42" in out["result"], out["result"]


# Codex's launcher picks its platform package's binary.
CODEX = JS / "node_modules" / "@openai" / "codex" / "bin" / "codex.js"
CODEX_NATIVE = JS / "node_modules" / "@openai" / f"codex-linux-{ARCH}"


def test_codex_completes_a_one_tool_task(gemgate, tmp_path):
    agent_binary(CODEX_NATIVE)
    server = gemgate([fake_key("ok", 1)])
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    (home / ".codex").mkdir(parents=True)
    (work / "hello.txt").write_text("the answer is 42\n")
    env = dict(os.environ, HOME=str(home), CODEX_HOME=str(home / ".codex"), GEMGATE_API_KEY=CLIENT_KEY)
    provider = (f'model_providers.gemgate={{name="gemgate",base_url="{server.base_url}/v1",'
                'env_key="GEMGATE_API_KEY",wire_api="responses"}')
    result = subprocess.run(
        ["node", str(CODEX), "exec", "--skip-git-repo-check", "-c", "model_provider=gemgate", "-c", provider,
         "-m", "gemini-2.5-flash", 'Show the file. [call exec_command {"cmd": "cat hello.txt"}]'],
        cwd=work, env=env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The final message (stdout) is the fake's answer quoting the command's output.
    assert "exec_command returned" in result.stdout and "the answer is 42" in result.stdout, result.stdout + result.stderr
