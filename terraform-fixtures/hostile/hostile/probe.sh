# What a shell finds and may write, run by the pull request's workflow and by its provisioner.
# Every line starts with the stage ($1), so the test can tell which attempt printed what.
stage="$1"
say() { echo "$stage: $*"; }

say "processes: $(ls /proc | grep -E '^[0-9]+$' | tr '\n' ' ')"
for process in /proc/[0-9]*; do
    say "environ of ${process#/proc/}: $(tr '\0' ' ' < "$process/environ" 2>&1)"
    say "environ of ${process#/proc/} in base64: $(base64 -w0 < "$process/environ" 2>&1)"
    say "cmdline of ${process#/proc/} in base64: $(base64 -w0 < "$process/cmdline" 2>&1)"
done
say "data dir: $(ls -A '__DATA_DIR__' 2>&1 | tr '\n' ' ')"
say "database: $(base64 -w0 < '__DATA_DIR__/atlas.db' 2>&1)"
say "other pull request: $(cat '__OTHER_WORKING_COPY__/app/main.tf' 2>&1 | tr '\n' ' ')"
say "job logs: $(cat '__DATA_DIR__'/jobs/*.log 2>&1 | base64 -w0)"
say "config file: $(cat '__CONFIG_FILE__' 2>&1 | tr '\n' ' ')"
say "repos.yaml: $(cat '__REPOS_YAML__' 2>&1 | tr '\n' ' ')"
say "token file: $(cat '__TOKEN_FILE__' 2>&1)"
for target in '__DATA_DIR__' '__OUTSIDE_DIR__' /etc /usr /; do
    if echo pwned > "$target/written-by-$stage" 2>/dev/null; then
        say "wrote into $target"
    else
        say "could not write into $target"
    fi
done
echo "$stage" > /tmp/written-by-pull-request && say "wrote into its private /tmp"
say "done"
