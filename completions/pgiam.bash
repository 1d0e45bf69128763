# bash completion for pgiam(1)                             -*- shell-script -*-
#
# Source this file from ~/.bashrc, or copy it to
# ~/.local/share/bash-completion/completions/pgiam. Plain bash 4+ is enough:
# the bash-completion package's _init_completion is used only when it is loaded.
# Service names come from `pgiam list --names`, which reads config.toml only
# (no AWS, no token), so completing them stays fast.
# tests/unit/test_docs_drift.py checks that every subcommand and option of the
# parser appears here; tests/e2e/test_completions.py runs this file in bash.

_pgiam_services() {
    command pgiam list --names 2>/dev/null
}

# _pgiam_offer WORD... : COMPREPLY = the words that start with $cur.
_pgiam_offer() {
    local w
    COMPREPLY=()
    for w in "$@"; do
        [[ $w == "$cur"* ]] && COMPREPLY+=("$w")
    done
}

_pgiam() {
    local cur prev words cword split=false
    if declare -F _init_completion >/dev/null 2>&1; then
        _init_completion -s || return
    else
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD - 1]}
        # Plain bash splits `--opt=value` at the `=` (it is in COMP_WORDBREAKS).
        if [[ $cur == = ]]; then
            cur=
            split=true
        elif [[ $prev == = ]]; then
            prev=${COMP_WORDS[COMP_CWORD - 2]}
            split=true
        fi
    fi

    # The value of an option that takes one.
    case $prev in
        --sslrootcert | --python)
            compopt -o filenames 2>/dev/null
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
            return
            ;;
        --partition)
            _pgiam_offer aws aws-us-gov aws-cn
            return
            ;;
        --format)
            _pgiam_offer sh fish json
            return
            ;;
        --scheme)
            _pgiam_offer postgresql postgresql+psycopg postgresql+psycopg2 postgresql+asyncpg
            return
            ;;
        --for)
            _pgiam_offer libpq sqlalchemy+psycopg sqlalchemy+psycopg2 sqlalchemy+asyncpg asyncpg node-postgres jdbc
            return
            ;;
        --every)
            _pgiam_offer 1m 2m 3m 4m 5m 6m 7m  # whole minutes; at most the renewal margin minus 30 s
            return
            ;;
        --host | --port | --user | --dbname | --region | --profile | --via | --url | --prefix | --min-left)
            COMPREPLY=()
            return
            ;;
    esac
    $split && return

    # The positional words typed so far: command, action, names.
    local -a pos=()
    local i w
    for ((i = 1; i < cword; i++)); do
        w=${words[i]}
        case $w in
            --host | --port | --user | --dbname | --region | --profile | --via | --sslrootcert | --every | --url | --partition | --prefix | --python | --min-left | --format | --scheme | --for)
                ((i++))
                [[ ${words[i]-} == = ]] && ((i++))
                ;;
            -* | =) ;;
            *) pos+=("$w") ;;
        esac
    done

    local cmd=${pos[0]-} action=${pos[1]-}
    local -a opts=() args=()
    if [[ -z $cmd ]]; then
        opts=(--debug --version --help -h)
        args=(add remove list status refresh token env url export run sandbox hook timer certs discover completion uninstall doctor)
    else
        opts=(--help -h)
        case $cmd in
            add) opts+=(--host --port --user --dbname --region --profile --via --sslrootcert
                        --require-auth --replace --no-refresh) ;;
            remove | token) ((${#pos[@]} == 1)) && mapfile -t args < <(_pgiam_services) ;;
            env)
                opts+=(--format)
                ((${#pos[@]} == 1)) && mapfile -t args < <(_pgiam_services)
                ;;
            url)
                opts+=(--for --scheme)
                ((${#pos[@]} == 1)) && mapfile -t args < <(_pgiam_services)
                ;;
            export)
                case $action in
                    '') args=(pgadmin pgbouncer) ;;
                    pgadmin) mapfile -t args < <(_pgiam_services) ;;
                    pgbouncer)
                        opts+=(--ca-file)
                        mapfile -t args < <(_pgiam_services)
                        ;;
                esac
                ;;
            list) opts+=(--json --names) ;;
            discover) opts+=(--profile --region --json --prefix --add --user --dbname --replace) ;;
            status | refresh | doctor)
                opts+=(--json)
                [[ $cmd == refresh ]] && opts+=(--if-needed --wait --quiet)
                [[ $cmd == status ]] && opts+=(--check --min-left)
                [[ $cmd == doctor ]] && opts+=(--online --python)
                local name
                while IFS= read -r name; do
                    # Offer each service once.
                    [[ " ${pos[*]:1} " == *" $name "* ]] || args+=("$name")
                done < <(_pgiam_services)
                ;;
            hook | completion) ((${#pos[@]} == 1)) && args=(bash zsh fish) ;;
            uninstall) opts+=(--yes) ;;
            run) opts+=(--once --pgbouncer-auth-file --pgbouncer-pidfile --http) ;;
            sandbox)
                case $action in
                    '') args=(up down status) ;;
                    up) opts+=(--port) ;;
                    status) opts+=(--json) ;;
                esac
                ;;
            timer)
                case $action in
                    '') args=(install remove status) ;;
                    install) opts+=(--systemd --cron --launchd --every --no-enable) ;;
                    remove) opts+=(--systemd --cron --launchd) ;;
                    status) opts+=(--json) ;;
                esac
                ;;
            certs)
                case $action in
                    '') args=(update status) ;;
                    update) opts+=(--url --partition) ;;
                    status) opts+=(--json) ;;
                esac
                ;;
        esac
    fi

    if [[ $cur == -* || ${#args[@]} -eq 0 ]]; then
        # Options not given yet (also when no word fits here); --systemd, --cron and --launchd exclude each other.
        local o given=" ${words[*]:1:cword-1} "
        args=()
        for o in "${opts[@]}"; do
            [[ $given == *" $o "* || $given == *" $o="* ]] && continue
            [[ $o == --systemd || $o == --cron || $o == --launchd ]] &&
                [[ $given == *" --systemd "* || $given == *" --cron "* || $given == *" --launchd "* ]] && continue
            args+=("$o")
        done
    fi
    _pgiam_offer "${args[@]}"
}

complete -F _pgiam pgiam
