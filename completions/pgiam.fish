# fish completion for pgiam(1).
#
# Copy this file to ~/.config/fish/completions/pgiam.fish.
# Service names come from `pgiam list --names`, which reads config.toml only.
# tests/unit/test_docs_drift.py checks that every subcommand and option of the
# parser appears here; tests/e2e/test_completions.py runs it in fish.

function __pgiam_args --description 'the positional words before the cursor: command, action, names'
    set -l tokens (commandline -opc)
    set -e tokens[1]
    set -l skip 0
    for t in $tokens
        if test $skip = 1
            set skip 0
            continue
        end
        switch $t
            case --host --port --user --dbname --region --profile --via --sslrootcert --every --url --partition --format --scheme --for
                set skip 1
            case '-*'
            case '*'
                printf '%s\n' $t
        end
    end
end

function __pgiam_at --description 'true when the positional words so far are exactly the arguments'
    test (count (__pgiam_args)) -eq (count $argv); and __pgiam_in $argv
end

function __pgiam_in --description 'true when the positional words so far start with the arguments'
    set -l args (__pgiam_args)
    test (count $args) -ge (count $argv); or return 1
    for i in (seq (count $argv))
        test "$args[$i]" = "$argv[$i]"; or return 1
    end
end

function __pgiam_services --description 'configured service names not typed yet'
    set -l typed (__pgiam_args)
    for name in (command pgiam list --names 2>/dev/null)
        contains -- $name $typed; or printf '%s\n' $name
    end
end

complete -c pgiam -f
complete -c pgiam -s h -l help -d 'show help and exit'

# Global options and the commands.
complete -c pgiam -n __pgiam_at -l version -d 'show the version and exit'
complete -c pgiam -n __pgiam_at -l debug -d 'show tracebacks for unexpected errors'
complete -c pgiam -n __pgiam_at -a add -d 'add a service: config, service-file entry and a fresh token'
complete -c pgiam -n __pgiam_at -a remove -d 'remove a service and its token line'
complete -c pgiam -n __pgiam_at -a list -d 'list configured services'
complete -c pgiam -n __pgiam_at -a status -d 'token expiry and last error per service'
complete -c pgiam -n __pgiam_at -a refresh -d 'mint fresh tokens into ~/.pgpass'
complete -c pgiam -n __pgiam_at -a token -d 'print a valid token on stdout'
complete -c pgiam -n __pgiam_at -a env -d 'print the PG* variables of a service'
complete -c pgiam -n __pgiam_at -a url -d 'print a connection URL or config for one client'
complete -c pgiam -n __pgiam_at -a export -d 'print services in another tool\'s configuration format (pgAdmin 4, pgbouncer)'
complete -c pgiam -n __pgiam_at -a run -d 'keep every service\'s token fresh until stopped'
complete -c pgiam -n __pgiam_at -a sandbox -d 'a local PostgreSQL that checks IAM tokens like RDS'
complete -c pgiam -n __pgiam_at -a hook -d 'print a prompt hook that keeps tokens fresh'
complete -c pgiam -n __pgiam_at -a timer -d 'refresh tokens from a systemd user timer, cron or launchd'
complete -c pgiam -n __pgiam_at -a certs -d 'manage the Amazon RDS CA bundles'
complete -c pgiam -n __pgiam_at -a completion -d 'print the completion script for bash, zsh or fish'
complete -c pgiam -n __pgiam_at -a uninstall -d 'undo everything pgiam wrote'
complete -c pgiam -n __pgiam_at -a discover -d 'list the account PostgreSQL endpoints (and add them)'
complete -c pgiam -n __pgiam_at -a doctor -d 'check each service from the shell to the server'

# add NAME --host HOST --user USER [options]
complete -c pgiam -n '__pgiam_in add' -l host -x -d 'the endpoint DNS name'
complete -c pgiam -n '__pgiam_in add' -l port -x -d 'the endpoint port (default 5432)'
complete -c pgiam -n '__pgiam_in add' -l user -x -d 'database user (granted rds_iam)'
complete -c pgiam -n '__pgiam_in add' -l dbname -x -d 'database name'
complete -c pgiam -n '__pgiam_in add' -l region -x -d 'AWS region'
complete -c pgiam -n '__pgiam_in add' -l profile -x -d 'AWS profile that signs the tokens'
complete -c pgiam -n '__pgiam_in add' -l via -x -d 'connect through a tunnel at ADDR:PORT'
complete -c pgiam -n '__pgiam_in add' -l sslrootcert -r -F -d 'CA file to verify the server'
complete -c pgiam -n '__pgiam_in add' -l require-auth -d 'libpq 16+: send the token only to a password-asking server'
complete -c pgiam -n '__pgiam_in add' -l replace -d 'replace an existing service or take over its section'
complete -c pgiam -n '__pgiam_in add' -l no-refresh -d 'do not mint a token now'

# remove NAME, token NAME, refresh [NAME...]
complete -c pgiam -n '__pgiam_at remove' -a '(__pgiam_services)' -d 'service'
complete -c pgiam -n '__pgiam_at token' -a '(__pgiam_services)' -d 'service'
# env NAME [--format sh|fish|json], url NAME [--for CLIENT]
complete -c pgiam -n '__pgiam_at env' -a '(__pgiam_services)' -d 'service'
complete -c pgiam -n '__pgiam_in env' -l format -x -a 'sh fish json' -d 'shell syntax or JSON'
complete -c pgiam -n '__pgiam_at url' -a '(__pgiam_services)' -d 'service'
complete -c pgiam -n '__pgiam_in url' -l for -x -a 'libpq sqlalchemy+psycopg sqlalchemy+psycopg2 sqlalchemy+asyncpg asyncpg node-postgres jdbc' -d 'the client the form is for'
complete -c pgiam -n '__pgiam_in url' -l scheme -x -a 'postgresql postgresql+psycopg postgresql+psycopg2 postgresql+asyncpg' -d 'deprecated alias of --for'
complete -c pgiam -n '__pgiam_in refresh' -a '(__pgiam_services)' -d 'service'
complete -c pgiam -n '__pgiam_in refresh' -l if-needed -d 'only tokens that are due'
complete -c pgiam -n '__pgiam_in refresh' -l wait -x -d 'return after at most SECONDS'
complete -c pgiam -n '__pgiam_in refresh' -l quiet -d 'print nothing on success'
complete -c pgiam -n '__pgiam_in refresh' -l json -d 'machine-readable output'

# list, status
complete -c pgiam -n '__pgiam_in list' -l json -d 'machine-readable output'
complete -c pgiam -n '__pgiam_in list' -l names -d 'service names only, one per line'
complete -c pgiam -n '__pgiam_in status' -l json -d 'machine-readable output'
complete -c pgiam -n '__pgiam_in status' -a '(__pgiam_services)' -d 'service'
complete -c pgiam -n '__pgiam_in status' -l check -d 'exit 1 unless every token is valid and its last refresh succeeded'
complete -c pgiam -n '__pgiam_in status' -l min-left -x -d 'with --check: seconds each token must still be valid'

# doctor [NAME...]
complete -c pgiam -n '__pgiam_in doctor' -a '(__pgiam_services)' -d 'service'
complete -c pgiam -n '__pgiam_in doctor' -l online -d 'also ask AWS: STS, RDS, IAM policy simulation'
complete -c pgiam -n '__pgiam_in doctor' -l python -r -F -d 'report the libpq of psycopg in this interpreter'
complete -c pgiam -n '__pgiam_in doctor' -l json -d 'machine-readable output'

# run [--once] [--pgbouncer-auth-file FILE [--pgbouncer-pidfile FILE]] [--http HOST:PORT]
complete -c pgiam -n '__pgiam_in run' -l once -d 'renew what is due once, then exit'
complete -c pgiam -n '__pgiam_in run' -l pgbouncer-auth-file -r -F -d 'keep the users\' lines fresh in this pgbouncer auth_file'
complete -c pgiam -n '__pgiam_in run' -l pgbouncer-pidfile -r -F -d 'send pgbouncer SIGHUP after each change'
complete -c pgiam -n '__pgiam_in run' -l http -x -d 'serve probes and Prometheus metrics on HOST:PORT'

# hook SHELL
complete -c pgiam -n '__pgiam_at hook' -a 'bash zsh fish' -d 'shell'

# completion SHELL, uninstall [--yes]
complete -c pgiam -n '__pgiam_at completion' -a 'bash zsh fish' -d 'shell'
complete -c pgiam -n '__pgiam_in uninstall' -l yes -d 'really remove (without it, only show what would go)'

# export pgadmin [NAME...]
complete -c pgiam -n '__pgiam_at export' -a pgadmin -d 'a pgAdmin 4 servers.json'
complete -c pgiam -n '__pgiam_in export pgadmin' -a '(__pgiam_services)' -d 'service'

# export pgbouncer [--ca-file FILE] [NAME...]
complete -c pgiam -n '__pgiam_at export' -a pgbouncer -d 'pgbouncer.ini lines ([databases], verify-full server TLS)'
complete -c pgiam -n '__pgiam_in export pgbouncer' -l ca-file -r -F -d 'write every service\'s CA certificates to FILE'
complete -c pgiam -n '__pgiam_in export pgbouncer' -a '(__pgiam_services)' -d 'service'

# sandbox up|down|status
complete -c pgiam -n '__pgiam_at sandbox' -a up -d 'start the sandbox and add the sandbox service'
complete -c pgiam -n '__pgiam_at sandbox' -a down -d 'stop the sandbox and remove the sandbox service'
complete -c pgiam -n '__pgiam_at sandbox' -a status -d 'what runs where'
complete -c pgiam -n '__pgiam_in sandbox up' -l port -x -d 'local TCP port for PostgreSQL'
complete -c pgiam -n '__pgiam_in sandbox status' -l json -d 'machine-readable output'

# timer install|remove|status
complete -c pgiam -n '__pgiam_at timer' -a install -d 'install the timer (launchd on macOS, else systemd or cron)'
complete -c pgiam -n '__pgiam_at timer' -a remove -d 'remove the timer'
complete -c pgiam -n '__pgiam_at timer' -a status -d 'is a timer installed, and is it active'
complete -c pgiam -n '__pgiam_in timer install; and not __fish_seen_argument -l cron -l launchd' -l systemd -d 'a systemd user timer'
complete -c pgiam -n '__pgiam_in timer install; and not __fish_seen_argument -l systemd -l launchd' -l cron -d 'a line in your crontab'
complete -c pgiam -n '__pgiam_in timer install; and not __fish_seen_argument -l systemd -l cron' -l launchd -d 'a macOS LaunchAgent'
complete -c pgiam -n '__pgiam_in timer install' -l every -x -a '1m 2m 3m 4m 5m 6m 7m' -d 'how often (default: the longest safe, 4m at a 300 s margin)'
complete -c pgiam -n '__pgiam_in timer install' -l no-enable -d 'write the units but do not enable them'
complete -c pgiam -n '__pgiam_in timer remove; and not __fish_seen_argument -l cron -l launchd' -l systemd -d 'only the systemd units'
complete -c pgiam -n '__pgiam_in timer remove; and not __fish_seen_argument -l systemd -l launchd' -l cron -d 'only the crontab line'
complete -c pgiam -n '__pgiam_in timer remove; and not __fish_seen_argument -l systemd -l cron' -l launchd -d 'only the LaunchAgent'
complete -c pgiam -n '__pgiam_in timer status' -l json -d 'machine-readable output'

# certs update|status
complete -c pgiam -n '__pgiam_at certs' -a update -d 'download the RDS CA bundle(s) over verified HTTPS'
complete -c pgiam -n '__pgiam_at certs' -a status -d 'managed bundles, CA counts and expiring CAs'
complete -c pgiam -n '__pgiam_in certs update' -l url -x -d 'download the bundle from this https URL'
complete -c pgiam -n '__pgiam_in certs update' -l partition -x -a 'aws aws-us-gov aws-cn' -d 'which partition'
complete -c pgiam -n '__pgiam_in certs status' -l json -d 'machine-readable output'

# discover [--profile P ...] [--region R ...] [--json] [--prefix P] [--add --user U [--dbname D] [--replace]]
complete -c pgiam -n '__pgiam_in discover' -l profile -x -d 'AWS profile to scan (repeatable)'
complete -c pgiam -n '__pgiam_in discover' -l region -x -d 'region to scan (repeatable)'
complete -c pgiam -n '__pgiam_in discover' -l json -d 'machine-readable output'
complete -c pgiam -n '__pgiam_in discover' -l prefix -x -d 'put this before every suggested name'
complete -c pgiam -n '__pgiam_in discover' -l add -d 'add every IAM-enabled endpoint as a service'
complete -c pgiam -n '__pgiam_in discover' -l user -x -d 'with --add: database user'
complete -c pgiam -n '__pgiam_in discover' -l dbname -x -d 'with --add: database name'
complete -c pgiam -n '__pgiam_in discover' -l replace -d 'with --add: replace services of the same name'
