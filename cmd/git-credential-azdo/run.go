package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
	"github.com/azdo-sidecar/azdo-sidecar/credential"
	"github.com/azdo-sidecar/azdo-sidecar/internal/version"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/token"
)

const name = "git-credential-azdo"

const usage = "usage: git-credential-azdo [--socket PATH] [--pat-file FILE] [--host HOST[:PORT]]... [--config FILE] get|store|erase"

// options are the helper's settings: flag > environment > --config file >
// default.
type options struct {
	action  string
	version bool // --version: print it and exit
	socket  string
	patFile string
	pat     secret.String // AZDO_PAT
	hosts   []string
}

// errUsage marks a command line that does not parse (exit 2).
var errUsage = errors.New(usage)

// parseArgs reads the flags by hand (no CLI framework: start-up time is on
// git's critical path). Git appends the action after the configured
// arguments, so the action is the last word.
func parseArgs(args []string, getenv func(string) (string, bool)) (options, error) {
	var o options
	var flagSocket, flagPAT, flagConfig *string
	var flagHosts []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			if o.action != "" {
				return o, fmt.Errorf("%w: unexpected argument %q", errUsage, a)
			}
			o.action = a
			continue
		}
		key, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch key {
		case "socket", "pat-file", "host", "config":
		case "version", "v":
			o.version = true
			return o, nil
		case "h", "help":
			return o, errUsage
		default:
			return o, fmt.Errorf("%w: unknown flag %q", errUsage, "--"+key)
		}
		if !hasVal {
			if i+1 >= len(args) {
				return o, fmt.Errorf("%w: --%s needs a value", errUsage, key)
			}
			i++
			val = args[i]
		}
		switch key {
		case "socket":
			flagSocket = &val
		case "pat-file":
			flagPAT = &val
		case "host":
			flagHosts = append(flagHosts, val)
		case "config":
			flagConfig = &val
		}
	}
	if o.action == "" {
		return o, fmt.Errorf("%w: missing action", errUsage)
	}
	var file fileSettings
	if path := pick(flagConfig, getenv, "AZDO_CONFIG"); path != "" {
		var err error
		if file, err = readConfig(path); err != nil {
			return o, err
		}
	}
	o.socket = pick(flagSocket, getenv, "AZDO_SOCKET")
	if o.socket == "" && file.socket != nil {
		o.socket = *file.socket
	}
	o.patFile = pick(flagPAT, getenv, "AZDO_PAT_FILE")
	if o.patFile == "" && file.patFile != nil {
		o.patFile = *file.patFile
	}
	if v, ok := getenv("AZDO_PAT"); ok && v != "" {
		o.pat = secret.New(strings.TrimSpace(v))
	}
	o.hosts = flagHosts
	if len(o.hosts) == 0 {
		if v, ok := getenv("AZDO_HOST"); ok {
			for h := range strings.SplitSeq(v, ",") {
				if h = strings.TrimSpace(h); h != "" {
					o.hosts = append(o.hosts, h)
				}
			}
		}
	}
	if len(o.hosts) == 0 {
		o.hosts = file.hosts
	}
	return o, nil
}

func pick(flag *string, getenv func(string) (string, bool), env string) string {
	if flag != nil {
		return *flag
	}
	v, _ := getenv(env)
	return v
}

// run is the whole helper; it returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) (string, bool), stdin io.Reader, stdout, stderr io.Writer) int {
	o, err := parseArgs(args, getenv)
	if errors.Is(err, errConfig) {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 2
	}
	if o.version {
		fmt.Fprintf(stdout, "%s version %s\n", name, version.Get())
		return 0
	}
	hosts, err := azdo.NewHosts(o.hosts)
	if err != nil {
		fmt.Fprintf(stderr, "%s: --host: %v\n", name, err)
		return 2
	}
	h := &credential.Helper{Stdin: stdin, Stdout: stdout, Stderr: stderr, Hosts: hosts, Name: name}
	switch {
	case o.patFile != "" && !o.pat.IsZero():
		fmt.Fprintf(stderr, "%s: both --pat-file (AZDO_PAT_FILE) and AZDO_PAT are set; allowed: one of them\n", name)
		return 2
	case o.patFile != "" || !o.pat.IsZero():
		var src token.Source = token.NewStatic(o.pat)
		if o.patFile != "" {
			// Read the file only for a request that needs it, so that a
			// bad file never gets in the way of other hosts' helpers.
			path := o.patFile
			src = token.SourceFunc(func(ctx context.Context, key token.Key) (token.Token, error) {
				pat, err := token.ReadPATFile(path)
				if err != nil {
					return token.Token{}, err
				}
				return token.NewStatic(pat).Token(ctx, key)
			})
		}
		h.Local = credential.NewTokenHandler(src, hosts)
	default:
		h.Client = &credential.Client{Socket: o.socket}
	}
	return h.Run(ctx, o.action)
}
