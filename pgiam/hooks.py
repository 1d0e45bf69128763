"""Prompt hooks for bash, zsh and fish that keep IAM tokens fresh (`pgiam hook SHELL`).

The snippet runs at every prompt, so it must cost next to nothing when no token
is due: it reads one epoch number from the next-due file and compares it with
the clock using shell builtins only, and forks nothing unless a refresh is due.
Rendering is pure: str in, str out; the CLI prints it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pgiam.errors import UsageError
from pgiam.facts import REFRESH_ARGS, next_due_limit

SHELLS = ("bash", "zsh", "fish")
HOOK_NAME = "__pgiam_hook"
# After launching a refresh, a shell waits this long before launching another: a refresh
# that cannot succeed (expired SSO session, no network) must not run at every prompt, and a
# background refresh still running must not be started twice.
RETRY_SECONDS = 30
# When the token has expired (or the files changed, or the clock jumped) the prompt waits for the
# new token, but never longer than this: past it the refresh goes on in the background (fish has no
# read timeout, so pgiam itself bounds the wait).
WAIT_SECONDS = 3


def sh_quote(value: str) -> str:
    """Quote one word for bash or zsh: single quotes, each ' written as '\\''."""
    return "'" + value.replace("'", "'\\''") + "'"


def fish_quote(value: str) -> str:
    """Quote one word for fish: inside single quotes only \\ and ' are special."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def render_hook(shell: str, *, exe: list[str], next_due_file: Path, notice_file: Path, margin: int,
                watch: Sequence[Path] = ()) -> str:
    """The snippet to eval (bash, zsh) or source (fish) that installs pgiam's prompt hook.

    `watch`: files (the config and both libpq files) whose change after next-due was written means
    pgiam's note may be stale (a block deleted by hand, a restored backup): the full check runs.
    """
    if shell not in SHELLS:
        raise UsageError(f"unknown shell {shell!r}: pgiam has prompt hooks for bash, zsh and fish",
                         "run `pgiam hook bash`, `pgiam hook zsh` or `pgiam hook fish`")
    if not exe or not exe[0].startswith("/"):
        raise UsageError(f"the pgiam command for the hook must start with an absolute path, not {exe!r}",
                         "run pgiam through its absolute path")
    if isinstance(margin, bool) or not isinstance(margin, int) or margin < 0:
        raise UsageError(f"the renewal margin must be a whole number of seconds >= 0, not {margin!r}")
    # A next-due further ahead than a token signed now becomes due (plus the clock tolerance) was
    # computed under another clock: the same bound as the fast path's (pgiam.facts.next_due_limit).
    limit = next_due_limit(margin)
    wait_args = [*REFRESH_ARGS, "--wait", str(WAIT_SECONDS)]
    if shell == "fish":
        q = fish_quote
        changed = "; or ".join(f"test {q(str(w))} -nt {q(str(next_due_file))}" for w in watch) or "false"
        return _FISH.format(due=q(str(next_due_file)), notice=q(str(notice_file)),
                            cmd=" ".join([q(w) for w in exe] + list(REFRESH_ARGS)),
                            cmd_wait=" ".join([q(w) for w in exe] + wait_args),
                            margin=margin, retry=RETRY_SECONDS, hook=HOOK_NAME, limit=limit, changed=changed,
                            wait=WAIT_SECONDS)
    q = sh_quote
    changed = " || ".join(f"{q(str(w))} -nt {q(str(next_due_file))}" for w in watch) or "-n ''"
    template = _BASH if shell == "bash" else _ZSH
    return template.format(due=q(str(next_due_file)), notice=q(str(notice_file)),
                           cmd=" ".join([q(w) for w in exe] + list(REFRESH_ARGS)),
                           cmd_wait=" ".join([q(w) for w in exe] + wait_args),
                           margin=margin, retry=RETRY_SECONDS, hook=HOOK_NAME, limit=limit, changed=changed,
                            wait=WAIT_SECONDS)


# Shared shape of the three snippets:
# 1. next-due missing or unreadable, or not yet due: no process at all (a stat and a read).
# 2. due but within the margin: the token still works, refresh in the background, detached.
# 3. past due + margin: the token has expired, refresh synchronously so the next psql works.
# 4. the notice file (written by a failed refresh) is printed once per shell per text, without control
#    characters (bash/zsh: ${line//[[:cntrl:]]/}; fish: string replace -ra '[[:cntrl:]]' '').
# 5. a relative PGPASSFILE / PGSERVICEFILE (refused by pgiam before a refresh could leave a notice): said
#    once per text by the hook itself. The refresh still runs (and is refused at once, writing nothing): the
#    shell variable may be set without being exported, and then pgiam and libpq never see it.
# Templates use str.format: literal braces are doubled.

_BASH = """\
# pgiam prompt hook for bash 4.2+: eval "$(pgiam hook bash)" in ~/.bashrc.
# Builtins only at each prompt: [[ -r ]] is one stat, `read < file` forks nothing.
{hook}() {{
  local __pgiam_s=$? due= now= line= rel=
  # pgiam refuses a relative PGPASSFILE / PGSERVICEFILE (libpq would resolve it in whatever directory the
  # shell is in) before any refresh can leave a notice: the hook says it itself, once per text.
  if [[ -n ${{PGPASSFILE-}} && $PGPASSFILE != /* ]]; then rel="PGPASSFILE=$PGPASSFILE"; fi
  if [[ -n ${{PGSERVICEFILE-}} && $PGSERVICEFILE != /* ]]; then rel="${{rel:+$rel, }}PGSERVICEFILE=$PGSERVICEFILE"; fi
  if [[ $rel != "${{__pgiam_rel-}}" ]]; then
    __pgiam_rel=$rel
    if [[ -n $rel ]]; then printf 'pgiam: %s: a relative path, so pgiam renews no token; export it as an absolute path\n' "${{rel//[[:cntrl:]]/}}" >&2; fi
  fi
  if [[ -r {due} ]]; then
    read -r due < {due}
    # Only digits: anything else (a half-written or foreign file) is ignored, not evaluated.
    if [[ -n $due && $due != *[!0-9]* ]]; then
      # EPOCHSECONDS from bash 5.0; printf's %(%s)T (4.2+) is the builtin fallback.
      now=${{EPOCHSECONDS-}}
      [[ -n $now ]] || printf -v now '%(%s)T' -1
      if (( now >= ${{__pgiam_retry:-0}} )); then
        # Expired, a next-due from another clock, or a libpq file / the config changed since:
        # wait (at most {wait}s, pgiam bounds it) for the new token so the next command connects.
        if (( now >= 10#$due + {margin} || 10#$due > now + {limit} )) || [[ {changed} ]]; then
          __pgiam_retry=$(( now + {retry} ))
          {cmd_wait} </dev/null >/dev/null 2>&1
        elif (( now >= 10#$due )); then
          __pgiam_retry=$(( now + {retry} ))
          # Still valid: refresh in a subshell's background job, so the prompt neither
          # waits nor prints job-control messages, and the shell's job table stays clean.
          ( {cmd} </dev/null >/dev/null 2>&1 & )
        fi
      fi
    fi
  fi
  if [[ -r {notice} ]]; then
    read -r line < {notice}
    # No control character reaches the terminal (a planted notice could hold escape sequences).
    line=${{line//[[:cntrl:]]/}}
    # Show each notice text once per shell, not at every prompt.
    if [[ -n $line && $line != "${{__pgiam_notice-}}" ]]; then
      __pgiam_notice=$line
      if [[ $line == pgiam* ]]; then printf '%s\\n' "$line" >&2; else printf 'pgiam: %s\\n' "$line" >&2; fi
    fi
  elif [[ -n ${{__pgiam_notice-}} ]]; then
    __pgiam_notice=
  fi
  return $__pgiam_s
}}
if (( BASH_VERSINFO[0] > 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] >= 2) )); then
  # PROMPT_COMMAND may be an array from bash 5.1: add one element, keep the others.
  # ${{x[@]+set}} first: ${{x@a}} of an unset variable is an error under `set -u`.
  if (( BASH_VERSINFO[0] >= 5 )) && [[ ${{PROMPT_COMMAND[@]+set}} && ${{PROMPT_COMMAND@a}} == *a* ]]; then
    __pgiam_found=
    for __pgiam_c in "${{PROMPT_COMMAND[@]}}"; do
      if [[ $__pgiam_c == {hook} ]]; then __pgiam_found=1; fi
    done
    if [[ -z $__pgiam_found ]]; then PROMPT_COMMAND+=({hook}); fi
    unset __pgiam_c __pgiam_found
  elif [[ ${{PROMPT_COMMAND-}} != *{hook}* ]]; then
    # A newline, not `;`, separates it from what was there: safe after a trailing `;` or comment.
    if [[ -n ${{PROMPT_COMMAND-}} ]]; then PROMPT_COMMAND+=$'\\n{hook}'; else PROMPT_COMMAND={hook}; fi
  fi
else
  printf '%s\\n' 'pgiam: the prompt hook needs bash 4.2 or newer; use `pgiam timer install` instead' >&2
fi
"""

_ZSH = """\
# pgiam prompt hook for zsh: eval "$(pgiam hook zsh)" in ~/.zshrc.
# zsh/datetime gives $EPOCHSECONDS, so no prompt ever forks date(1).
zmodload zsh/datetime 2>/dev/null
{hook}() {{
  emulate -L zsh
  local due= now= line= rel=
  # pgiam refuses a relative PGPASSFILE / PGSERVICEFILE (libpq would resolve it in whatever directory the
  # shell is in) before any refresh can leave a notice: the hook says it itself, once per text.
  if [[ -n ${{PGPASSFILE-}} && $PGPASSFILE != /* ]]; then rel="PGPASSFILE=$PGPASSFILE"; fi
  if [[ -n ${{PGSERVICEFILE-}} && $PGSERVICEFILE != /* ]]; then rel="${{rel:+$rel, }}PGSERVICEFILE=$PGSERVICEFILE"; fi
  if [[ $rel != "${{__pgiam_rel-}}" ]]; then
    typeset -g __pgiam_rel=$rel
    if [[ -n $rel ]]; then print -r -u2 -- "pgiam: ${{rel//[[:cntrl:]]/}}: a relative path, so pgiam renews no token; export it as an absolute path"; fi
  fi
  if [[ -r {due} ]]; then
    read -r due < {due}
    # Only digits (<-> is zsh's number pattern): a half-written or foreign file is ignored.
    if [[ $due == <-> && -n ${{EPOCHSECONDS-}} ]]; then
      now=$EPOCHSECONDS
      if (( now >= ${{__pgiam_retry:-0}} )); then
        # Expired, a next-due from another clock, or a libpq file / the config changed since:
        # wait (at most {wait}s, pgiam bounds it) for the new token so the next command connects.
        if (( now >= due + {margin} || due > now + {limit} )) || [[ {changed} ]]; then
          typeset -g __pgiam_retry=$(( now + {retry} ))
          {cmd_wait} </dev/null >/dev/null 2>&1
        elif (( now >= due )); then
          typeset -g __pgiam_retry=$(( now + {retry} ))
          # Still valid: &! starts it disowned, with no job-control messages.
          {cmd} </dev/null >/dev/null 2>&1 &!
        fi
      fi
    fi
  fi
  if [[ -r {notice} ]]; then
    read -r line < {notice}
    # No control character reaches the terminal (a planted notice could hold escape sequences).
    line=${{line//[[:cntrl:]]/}}
    # Show each notice text once per shell, not at every prompt.
    if [[ -n $line && $line != "${{__pgiam_notice-}}" ]]; then
      typeset -g __pgiam_notice=$line
      if [[ $line == pgiam* ]]; then print -r -u2 -- "$line"; else print -r -u2 -- "pgiam: $line"; fi
    fi
  elif [[ -n ${{__pgiam_notice-}} ]]; then
    typeset -g __pgiam_notice=
  fi
}}
# What add-zsh-hook does, without needing its autoloadable file on $fpath (zsh -f, minimal
# installs): append once to the global precmd_functions, keeping every other hook.
typeset -ga precmd_functions
if (( ! ${{precmd_functions[(Ie){hook}]}} )); then precmd_functions+=({hook}); fi
"""

_FISH = """\
# pgiam prompt hook for fish 3.6+: `pgiam hook fish | source` in ~/.config/fish/config.fish.
# fish has no clock variable and date(1) would fork, so the hook reads the time off the
# next-due file itself: now = its mtime (`path mtime`) + its age (`path mtime --relative`),
# both builtins. A redefinition replaces the function and its fish_prompt handler.
if path mtime --relative / >/dev/null 2>/dev/null
    set -g __pgiam_mtime ''
    set -q __pgiam_retry; or set -g __pgiam_retry 0
    set -q __pgiam_notice; or set -g __pgiam_notice ''
    set -q __pgiam_rel; or set -g __pgiam_rel ''
    function {hook} --on-event fish_prompt --description 'pgiam: keep RDS IAM tokens fresh'
        # pgiam refuses a relative PGPASSFILE / PGSERVICEFILE (libpq would resolve it in whatever directory
        # the shell is in) before any refresh can leave a notice: the hook says it itself, once per text.
        set -l rel
        if test -n "$PGPASSFILE"; and not string match -q '/*' -- "$PGPASSFILE"
            set rel "PGPASSFILE=$PGPASSFILE"
        end
        if test -n "$PGSERVICEFILE"; and not string match -q '/*' -- "$PGSERVICEFILE"
            set rel (string join ', ' -- $rel "PGSERVICEFILE=$PGSERVICEFILE")
        end
        set rel "$rel"
        if test "$rel" != "$__pgiam_rel"
            set -g __pgiam_rel $rel
            if test -n "$rel"
                printf 'pgiam: %s: a relative path, so pgiam renews no token; export it as an absolute path\n' (string replace -ra '[[:cntrl:]]' '' -- "$rel") >&2
            end
        end
        # One command substitution for both numbers: it is the costliest step of this hook.
        set -l t (path mtime -- {due}; path mtime --relative -- {due})
        if set -q t[2]
            if test "$t[1]" != "$__pgiam_mtime"
                # New or changed file: read it once and turn the due time into ages of the file,
                # so later prompts compare the age alone (no read, no math).
                set -g __pgiam_soon ''
                set -g __pgiam_late ''
                set -l due ''
                test -r {due}; and read due < {due}
                # Only digits: a half-written or foreign file is ignored.
                if string match -qr '^[0-9]+$' -- "$due"
                    set -g __pgiam_soon (math $due - $t[1])
                    set -g __pgiam_late (math $due + {margin} - $t[1])
                    # An age below this means the clock is far behind the next-due (it jumped).
                    set -g __pgiam_jump (math $due - {limit} - $t[1])
                end
                # Cache only a file at least 2 s old: a rewrite within the second we read it
                # would keep the same mtime and go unnoticed.
                if test $t[2] -ge 2
                    set -g __pgiam_mtime $t[1]
                else
                    set -g __pgiam_mtime ''
                end
            end
            if test -n "$__pgiam_soon"; and begin; test $t[2] -ge $__pgiam_soon; or test $t[2] -lt $__pgiam_jump; or {changed}; end
                set -l now (math $t[1] + $t[2])
                if test $now -ge $__pgiam_retry
                    set -g __pgiam_retry (math $now + {retry})
                    if test $t[2] -ge $__pgiam_late; or test $t[2] -lt $__pgiam_jump; or {changed}
                        # Expired, a next-due from another clock, or a libpq file / the config
                        # changed since: wait (at most {wait}s, pgiam bounds it) for the new token.
                        command {cmd_wait} </dev/null >/dev/null 2>&1
                    else
                        # Still valid: in the background, disowned, so fish never reports the job.
                        command {cmd} </dev/null >/dev/null 2>&1 &
                        disown $last_pid 2>/dev/null
                    end
                end
            end
        end
        if test -r {notice}
            read -l line < {notice}
            # No control character reaches the terminal (a planted notice could hold escape sequences);
            # "$line" quoted: always one argument, so `string` never reads stdin.
            set line (string replace -ra '[[:cntrl:]]' '' -- "$line")
            # Show each notice text once per shell, not at every prompt.
            if test -n "$line"; and test "$line" != "$__pgiam_notice"
                set -g __pgiam_notice $line
                if string match -q 'pgiam*' -- $line
                    printf '%s\\n' $line >&2
                else
                    printf 'pgiam: %s\\n' $line >&2
                end
            end
        else if test -n "$__pgiam_notice"
            set -g __pgiam_notice ''
        end
    end
else
    printf '%s\\n' 'pgiam: the prompt hook needs fish 3.6 or newer; use `pgiam timer install` instead' >&2
end
"""
