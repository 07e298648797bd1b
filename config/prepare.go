package config

import (
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
)

// ConfigFlag is the name of the flag that names the YAML settings file.
const ConfigFlag = "config"

// Options tune Prepare.
type Options struct {
	// FileKeys are top-level keys the --config file may hold besides flag
	// names; Prepare leaves them alone (azdo-vault's public_url and
	// providers, read by LoadVaultFile).
	FileKeys []string
	// Loaded, when set, runs before each command once its settings are
	// final (flags, environment and file applied, required flags checked),
	// before the command's own Before. It typically sets up logging.
	Loaded func(c *cli.Context) error
}

// Prepare gives every flag of app (global flags and every command's,
// subcommands included) its AZDO_* environment variable, adds --config to
// every command that lacks it, and makes each command load the --config file
// before it runs, so that precedence is flag > env > file > default.
//
// Flags marked Required are checked after the file is applied (urfave/cli
// would check them before), so a required setting may come from any source.
//
// Call Prepare once on a freshly built app: it modifies the flags in place.
func Prepare(app *cli.App, opts Options) {
	p := &preparer{opts: opts, known: map[string]bool{}, extra: map[string]bool{}}
	for _, k := range opts.FileKeys {
		p.extra[normalizeKey(k)] = true
	}
	for _, f := range app.Flags {
		p.flag(f)
	}
	for _, cmd := range app.Commands {
		p.command(cmd, false)
	}
}

type preparer struct {
	opts  Options
	known map[string]bool // every flag name in the app: the keys a file may set
	extra map[string]bool
}

func (p *preparer) flag(f cli.Flag) {
	for _, n := range f.Names() {
		if n != ConfigFlag && n != "help" && n != "version" && len(n) > 1 {
			p.known[n] = true
		}
	}
	v := reflect.ValueOf(f)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return
	}
	env := v.Elem().FieldByName("EnvVars")
	if env.IsValid() && env.CanSet() && env.Len() == 0 {
		env.Set(reflect.ValueOf([]string{EnvName(f.Names()[0])}))
	}
}

// command prepares cmd and its subcommands. A command gets its own --config
// unless an ancestor has one (credential's get/store/erase use credential's)
// or it is a flagless parent (env of env create).
func (p *preparer) command(cmd *cli.Command, inherited bool) {
	has := false
	for _, f := range cmd.Flags {
		if slices.Contains(f.Names(), ConfigFlag) {
			has = true
		}
	}
	flaglessParent := len(cmd.Flags) == 0 && len(cmd.Subcommands) > 0
	if !has && !inherited && !flaglessParent {
		has = true
		cmd.Flags = append(cmd.Flags, &cli.StringFlag{
			Name:      ConfigFlag,
			Usage:     "YAML `FILE` of settings; its keys are the flag names",
			TakesFile: true,
		})
	}
	var required []string
	for _, f := range cmd.Flags {
		p.flag(f)
		v := reflect.ValueOf(f)
		if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
			continue
		}
		if r := v.Elem().FieldByName("Required"); r.IsValid() && r.CanSet() && r.Bool() {
			r.SetBool(false)
			required = append(required, f.Names()[0])
			if u := v.Elem().FieldByName("Usage"); u.IsValid() && u.CanSet() {
				u.SetString(u.String() + " (required)")
			}
		}
	}
	before := cmd.Before
	cmd.Before = func(c *cli.Context) error {
		if err := p.load(c); err != nil {
			return err
		}
		for _, name := range required {
			if !c.IsSet(name) {
				if name == ConfigFlag {
					return errorf(name, ErrMissing, "required: pass --%s FILE or set %s", name, EnvName(name))
				}
				return errorf(name, ErrMissing, "required: pass --%s, set %s or put %q in the --config file", name, EnvName(name), name+":")
			}
		}
		if p.opts.Loaded != nil {
			if err := p.opts.Loaded(c); err != nil {
				return err
			}
		}
		if before != nil {
			return before(c)
		}
		return nil
	}
	for _, sub := range cmd.Subcommands {
		p.command(sub, inherited || has)
	}
}

// load applies the --config file of c (the nearest one set in c's lineage)
// to the flags visible from c that neither a flag nor the environment set.
func (p *preparer) load(c *cli.Context) error {
	path := ""
	for _, x := range c.Lineage() {
		if x.Command != nil && x.String(ConfigFlag) != "" {
			path = x.String(ConfigFlag)
			break
		}
	}
	if path == "" {
		return nil
	}
	values, err := readFlagFile(path)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		fv := values[key]
		name := normalizeKey(key)
		if p.extra[name] {
			continue
		}
		if !p.known[name] {
			return errorf(key, ErrUnknownKey, "%s line %d: unknown key; allowed keys: %s", path, fv.line, p.allowed())
		}
		f := lookupFlag(c, name)
		if f == nil || c.IsSet(name) {
			continue // another command's setting, or overridden by flag/env
		}
		vals := fv.values
		if fv.nested {
			return errorf(key, ErrBadValue, "%s line %d: want a value or a list of values", path, fv.line)
		}
		if fv.list && !isMulti(f) {
			return errorf(key, ErrBadValue, "%s line %d: a single value is allowed, not a list", path, fv.line)
		}
		for _, s := range vals {
			if err := c.Set(name, s); err != nil {
				return errorf(key, ErrBadValue, "%s line %d: %v", path, fv.line, err)
			}
		}
	}
	return nil
}

func (p *preparer) allowed() string {
	var ks []string
	for k := range p.known {
		ks = append(ks, k)
	}
	for k := range p.extra {
		ks = append(ks, strings.ReplaceAll(k, "-", "_"))
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

// lookupFlag finds the flag called name among the flags of c's command, its
// parents and the app.
func lookupFlag(c *cli.Context, name string) cli.Flag {
	var flags []cli.Flag
	for _, x := range c.Lineage() {
		if x.Command != nil {
			flags = append(flags, x.Command.Flags...)
		}
	}
	if c.App != nil {
		flags = append(flags, c.App.Flags...)
	}
	for _, f := range flags {
		if slices.Contains(f.Names(), name) {
			return f
		}
	}
	return nil
}

// isMulti reports whether f may be repeated.
func isMulti(f cli.Flag) bool {
	switch f.(type) {
	case *cli.StringSliceFlag, *cli.IntSliceFlag, *cli.Int64SliceFlag, *cli.Float64SliceFlag, *cli.UintSliceFlag, *cli.Uint64SliceFlag:
		return true
	}
	return false
}
