# fish completion for sonic(8)
#
# The command tree is the table below; the functions only read it, so a new
# object, verb or option is a new line here and nothing else. The same table
# is in sonic.bash and _sonic (zsh), and tests/unit/cli_docs_test.cpp checks
# all three against the code, both ways.
#
# One entry per line: 'PATH|KIND|WORDS'
#   PATH   the command words after "sonic" that lead here ("" is sonic itself)
#   KIND   objects, verbs  what may follow PATH
#          flags           options without a value
#          options         options with a value
#          keywords        ip-style arguments, each followed by a value
#          args            fixed words taken as an argument
#   WORDS  separated by spaces; NAME:TYPE tells how to complete the value of
#          an option or keyword: dir, file, cgroup (a cgroup v2 directory),
#          or a list of the accepted values separated by commas
#          (--format:pem,der,p12); without a TYPE the value is not completed
set -g __sonic_table \
	'|objects|prog accel tproxy fw ca cert run apply stats' \
	'|flags|-h --help -j --json -p --pretty -d --debug -q --quiet --version' \
	'|options|--bpffs:dir --state-dir:dir' \
	'prog|verbs|help load unload show probe' \
	'prog load|args|accel splice steer fw' \
	'prog load|options|--map-size' \
	'prog unload|flags|--force' \
	'prog unload|options|--timeout' \
	'accel|verbs|help enable disable status' \
	'accel enable|keywords|cgroup:cgroup ports scope:all,proxy' \
	'accel disable|keywords|cgroup:cgroup' \
	'accel disable|options|--timeout' \
	'tproxy|verbs|help add del list flush' \
	'tproxy add|keywords|dev cgroup:cgroup proto dport dst to mark table' \
	'tproxy del|keywords|dev cgroup:cgroup proto dport dst to mark table' \
	'fw|verbs|help attach detach add del list flush block unblock' \
	'fw attach|keywords|dev mode:native,generic' \
	'fw detach|keywords|dev' \
	'fw add|keywords|dev limit burst src dst proto:tcp,udp,icmp dport tcp-flags' \
	'fw add|args|drop pass' \
	'fw add|flags|--force' \
	'fw del|keywords|dev limit burst src dst proto:tcp,udp,icmp dport tcp-flags' \
	'fw del|args|drop pass' \
	'fw block|keywords|for reason' \
	'fw block|flags|--force' \
	'ca|verbs|help init show export trust' \
	'ca init|flags|--force' \
	'ca init|options|--key-type:ecdsa-p256,rsa-2048,rsa-4096 --cn --days' \
	'ca export|options|--format:pem,der,p12 --out:file' \
	'ca trust|flags|--remove' \
	'cert|verbs|help mint list show purge' \
	'cert mint|options|--days' \
	'cert purge|flags|--expired --all' \
	'run|flags|--check --reuse-port' \
	'run|options|--config:file --mode:reverse,forward,transparent --listen --upstream --script:file --workers --tls:intercept,passthrough,off --passthrough-sni --upstream-ca:file' \
	'apply|flags|--check --diff --prune' \
	'apply|options|-f:file --file:file' \
	'stats|args|accel splice steer fw flows all' \
	'stats|options|--watch --count --top --sort:bytes,packets,rate'

# Prints the WORDS of the entries PATH|KIND, one a line, as written (NAME:TYPE).
function __sonic_entries --argument-names cmdpath kind
    set -l head "$cmdpath|$kind|"
    for entry in $__sonic_table
        if test (string sub -l (string length -- $head) -- $entry) = $head
            string split -n ' ' -- (string sub -s (math (string length -- $head) + 1) -- $entry)
        end
    end
end

# Prints the names of the entries PATH|KIND, without their TYPE.
function __sonic_names --argument-names cmdpath kind
    for word in (__sonic_entries $cmdpath $kind)
        string replace -r -- ':.*' '' $word
    end
end

# If NAME is a word of PATH|KIND, prints its TYPE ("-" if it has none) and
# succeeds.
function __sonic_find --argument-names cmdpath kind name
    for word in (__sonic_entries $cmdpath $kind)
        set -l parts (string split -m 1 ':' -- $word)
        if test "$parts[1]" = "$name"
            if set -q parts[2]
                echo $parts[2]
            else
                echo -
            end
            return 0
        end
    end
    return 1
end

# The mount point of cgroup v2.
function __sonic_cgroup_root
    while read -l dev mnt type rest
        if test "$type" = cgroup2
            echo $mnt
            return
        end
    end </proc/mounts
end

# Prints the completions of CUR as a value of TYPE.
function __sonic_value --argument-names type cur
    switch $type
        case dir
            __fish_complete_directories $cur
        case file
            __fish_complete_path $cur
        case '*,*'
            string split , -- $type
        case cgroup
            set -l root (__sonic_cgroup_root)
            if test -z "$cur"; and test -n "$root"
                printf '%s/\tcgroup v2\n' $root
                return
            end
            # Absolute paths: only the way to the cgroup v2 mount and below it.
            for line in (__fish_complete_directories $cur cgroup)
                set -l dir (string replace -r -- '/?\t.*' '' $line)
                if not string match -q -- '/*' $cur; or test -z "$root"
                    or test "$dir" = "$root"; or string match -q -- "$root/*" $dir
                    or string match -q -- "$dir/*" $root
                    echo $line
                end
            end
    end
end

# Prints the completions of the current token of a sonic command line.
function __sonic_complete
    set -l tokens (commandline -opc)
    set -l cur (commandline -ct)
    set -l cmd ''
    set -l want ''
    set -l type ''
    set -l used
    set -l nargs 0

    for word in $tokens[2..-1]
        if test -n "$want"
            set want ''
            continue
        end
        switch $word
            case '--*=*'
                continue
            case '-*'
                set want (__sonic_find "$cmd" options $word; or __sonic_find '' options $word)
                continue
        end
        if __sonic_find "$cmd" objects $word >/dev/null; or __sonic_find "$cmd" verbs $word >/dev/null
            set cmd (string trim -- "$cmd $word")
        else if set type (__sonic_find "$cmd" keywords $word)
            set -a used $word
            set want $type
        else
            set nargs (math $nargs + 1)
        end
    end

    if test -n "$want"
        __sonic_value $want $cur
        return
    end
    if string match -q -- '--*=*' $cur
        set -l parts (string split -m 1 '=' -- $cur)
        if set type (__sonic_find "$cmd" options $parts[1]; or __sonic_find '' options $parts[1])
            for value in (__sonic_value $type $parts[2])
                echo "$parts[1]=$value"
            end
        end
        return
    end
    if string match -q -- '-*' $cur
        set -l options (__sonic_names "$cmd" flags) (__sonic_names "$cmd" options)
        if test -n "$cmd"
            set -a options (__sonic_names '' flags) (__sonic_names '' options)
        end
        for option in $options
            printf '%s\toption\n' $option
        end
        return
    end

    set -l verbs (__sonic_names "$cmd" objects) (__sonic_names "$cmd" verbs)
    if set -q verbs[1]
        set -l what verb
        test -z "$cmd"; and set what object
        for verb in $verbs
            printf '%s\t%s\n' $verb $what
        end
        return
    end
    for keyword in (__sonic_names "$cmd" keywords)
        contains -- $keyword $used; or printf '%s\tkeyword\n' $keyword
    end
    if test $nargs -eq 0
        for arg in (__sonic_names "$cmd" args)
            printf '%s\targument\n' $arg
        end
    end
end

complete -c sonic -f -a '(__sonic_complete)'
