# bash completion for sonic(8)                          -*- shell-script -*-
#
# The command tree is the table below; the functions only read it, so a new
# object, verb or option is a new line here and nothing else. The same table
# is in _sonic (zsh) and sonic.fish, and tests/unit/cli_docs_test.cpp checks
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
_sonic_table=(
	'|objects|prog accel tproxy fw ca cert run apply stats'
	'|flags|-h --help -j --json -p --pretty -d --debug -q --quiet --version'
	'|options|--bpffs:dir --state-dir:dir'
	'prog|verbs|help load unload show probe'
	'prog load|args|accel splice steer fw'
	'prog load|options|--map-size'
	'prog unload|flags|--force'
	'prog unload|options|--timeout'
	'accel|verbs|help enable disable status'
	'accel enable|keywords|cgroup:cgroup ports scope:all,proxy'
	'accel disable|keywords|cgroup:cgroup'
	'accel disable|options|--timeout'
	'tproxy|verbs|help add del list flush'
	'tproxy add|keywords|dev cgroup:cgroup proto dport dst to mark table'
	'tproxy del|keywords|dev cgroup:cgroup proto dport dst to mark table'
	'fw|verbs|help attach detach add del list flush block unblock'
	'fw attach|keywords|dev mode:native,generic'
	'fw detach|keywords|dev'
	'fw add|keywords|dev limit burst src dst proto:tcp,udp,icmp dport tcp-flags'
	'fw add|args|drop pass'
	'fw add|flags|--force'
	'fw del|keywords|dev limit burst src dst proto:tcp,udp,icmp dport tcp-flags'
	'fw del|args|drop pass'
	'fw block|keywords|for reason'
	'fw block|flags|--force'
	'ca|verbs|help init show export trust'
	'ca init|flags|--force'
	'ca init|options|--key-type:ecdsa-p256,rsa-2048,rsa-4096 --cn --days'
	'ca export|options|--format:pem,der,p12 --out:file'
	'ca trust|flags|--remove'
	'cert|verbs|help mint list show purge'
	'cert mint|options|--days'
	'cert purge|flags|--expired --all'
	'run|flags|--check --reuse-port'
	'run|options|--config:file --mode:reverse,forward,transparent --listen --upstream --script:file --workers --tls:intercept,passthrough,off --passthrough-sni --upstream-ca:file'
	'apply|flags|--check --diff --prune'
	'apply|options|-f:file --file:file'
	'stats|args|accel splice steer fw flows all'
	'stats|options|--watch --count --top --sort:bytes,packets,rate'
)

# Prints the WORDS of the entries PATH|KIND, one a line, as written (NAME:TYPE).
_sonic_entries()
{
	local entry
	for entry in "${_sonic_table[@]}"; do
		[[ $entry == "$1|$2|"* ]] && printf '%s\n' ${entry#"$1|$2|"}
	done
}

# Prints the names of the entries PATH|KIND, without their TYPE.
_sonic_names()
{
	local word
	for word in $(_sonic_entries "$1" "$2"); do
		printf '%s\n' "${word%%:*}"
	done
}

# If NAME is a word of PATH|KIND, prints its TYPE ("-" if it has none) and
# succeeds.
_sonic_find()
{
	local word
	for word in $(_sonic_entries "$1" "$2"); do
		if [[ ${word%%:*} == "$3" ]]; then
			[[ $word == *:* ]] && printf '%s\n' "${word#*:}" || printf '%s\n' -
			return 0
		fi
	done
	return 1
}

# The mount point of cgroup v2.
_sonic_cgroup_root()
{
	local dev mnt type rest
	while read -r dev mnt type rest; do
		[[ $type == cgroup2 ]] && { printf '%s\n' "$mnt"; return; }
	done < /proc/mounts
}

# Completes CUR as a value of TYPE.
_sonic_value()
{
	local type=$1 cur=$2 root dir
	case $type in
	dir)
		compopt -o filenames 2>/dev/null
		COMPREPLY=($(compgen -d -- "$cur"))
		;;
	file)
		compopt -o filenames 2>/dev/null
		COMPREPLY=($(compgen -f -- "$cur"))
		;;
	cgroup)
		root=$(_sonic_cgroup_root)
		compopt -o filenames 2>/dev/null
		if [[ -z $cur && -n $root ]]; then
			compopt -o nospace 2>/dev/null
			COMPREPLY=("$root/")
			return
		fi
		# Absolute paths: only the way to the cgroup v2 mount and below it.
		for dir in $(compgen -d -- "$cur"); do
			if [[ $cur != /* || -z $root || $dir == "$root" || $dir == "$root"/* || $root == "$dir"/* ]]; then
				COMPREPLY+=("$dir")
			fi
		done
		;;
	*,*)
		COMPREPLY=($(compgen -W "${type//,/ }" -- "$cur"))
		;;
	*)
		COMPREPLY=()
		;;
	esac
}

_sonic()
{
	local cur=${COMP_WORDS[COMP_CWORD]} cmd= want= word type i nargs=0 used=' '

	for ((i = 1; i < COMP_CWORD; i++)); do
		word=${COMP_WORDS[i]}
		if [[ -n $want ]]; then
			# "--opt=value" reaches us as "--opt" "=" "value".
			[[ $word == = ]] || want=
			continue
		fi
		case $word in
		--*=*) continue ;;
		-*)
			want=$(_sonic_find "$cmd" options "$word" || _sonic_find '' options "$word")
			continue
			;;
		esac
		if _sonic_find "$cmd" objects "$word" >/dev/null || _sonic_find "$cmd" verbs "$word" >/dev/null; then
			cmd=${cmd:+$cmd }$word
		elif type=$(_sonic_find "$cmd" keywords "$word"); then
			used+="$word "
			want=$type
		else
			((nargs++))
		fi
	done

	if [[ -n $want ]]; then
		[[ $cur == = ]] && cur=
		_sonic_value "$want" "$cur"
		return
	fi
	if [[ $cur == --*=* ]]; then
		if type=$(_sonic_find "$cmd" options "${cur%%=*}" || _sonic_find '' options "${cur%%=*}"); then
			_sonic_value "$type" "${cur#*=}"
			COMPREPLY=("${COMPREPLY[@]/#/${cur%%=*}=}")
		fi
		return
	fi
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$(
			_sonic_names "$cmd" flags
			_sonic_names "$cmd" options
			if [[ -n $cmd ]]; then
				_sonic_names '' flags
				_sonic_names '' options
			fi
		)" -- "$cur"))
		return
	fi

	local verbs
	verbs=$(_sonic_names "$cmd" objects; _sonic_names "$cmd" verbs)
	if [[ -n $verbs ]]; then
		COMPREPLY=($(compgen -W "$verbs" -- "$cur"))
		return
	fi
	local candidates=
	for word in $(_sonic_names "$cmd" keywords); do
		[[ $used == *" $word "* ]] || candidates+=" $word"
	done
	((nargs == 0)) && candidates+=" $(_sonic_names "$cmd" args)"
	COMPREPLY=($(compgen -W "$candidates" -- "$cur"))
}

complete -F _sonic sonic
