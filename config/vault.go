package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/azdo-sidecar/azdo-sidecar/azdo"
	"github.com/azdo-sidecar/azdo-sidecar/sealbox"
)

// VaultFileKeys are the top-level keys of a vault config file that are not
// flags; pass them as Options.FileKeys so Prepare leaves them alone.
var VaultFileKeys = []string{"public_url", "providers", "identity"}

// VaultFile is azdo-vault's config file (--config). Keys may be written
// with "_" or "-". Besides the fields below it may set the keys of
// azdo-vault's flags (VaultFlagKeys: listen, store, key-file, ...), which
// Prepare applies to the flags; LoadVaultFile accepts and ignores them.
type VaultFile struct {
	// PublicURL is the base of the Connect and callback links, as browsers
	// reach the vault: https, or http on loopback.
	PublicURL string     `yaml:"public_url"`
	Providers []Provider `yaml:"providers"`
	// Identity says which account may connect Azure DevOps for an
	// environment's owner.
	Identity Identity `yaml:"identity"`
}

// Identity is the vault's owner check: a Connect (Entra ID sign-in) or a
// PAT is stored for an environment's owner only when the account that
// signed in (or the PAT's user) is the owner's.
type Identity struct {
	// Claim is the ID-token claim that names the user: preferred_username
	// (default), upn, email or oid. A PAT's user is compared by its
	// account name (the UPN), or by its ID for oid.
	Claim string `yaml:"claim"`
	// Owners maps a platform's user name (env create --owner) to the
	// Entra ID identity (the claim's value); an owner not listed is its
	// own identity.
	Owners map[string]string `yaml:"owners"`
	// InsecureSkipOwnerCheck turns the check off: any account's grant or
	// PAT is stored for whichever owner's link was used.
	InsecureSkipOwnerCheck bool `yaml:"insecure_skip_owner_check"`
}

// IdentityClaims are the values Identity.Claim accepts.
var IdentityClaims = []string{"preferred_username", "upn", "email", "oid"}

// Provider is one Azure DevOps host and the ways users may connect to it.
// At least one of OAuth and PAT.Enabled is set; both may be.
type Provider struct {
	// Host is "dev.azure.com" or a self-hosted "host[:port]", which may
	// carry the server's virtual directory ("tfs.example.com/tfs"); after
	// Validate it is normalized (NormalizeHost) and the virtual directory
	// is in VirtualDir.
	Host  string `yaml:"host"`
	OAuth *OAuth `yaml:"oauth"`
	PAT   *PAT   `yaml:"pat"`
	// VirtualDir is the self-hosted server's virtual directory (the path
	// before its collections), decoded, "" for none; set by Validate from
	// Host. The vault puts it in the PAT page's links.
	VirtualDir string `yaml:"-"`
}

// OAuth is the "Azure DevOps (Entra ID)" method.
type OAuth struct {
	// IssuerURL is https://login.microsoftonline.com/<tenant>/v2.0 (the
	// .../oauth2/v2.0 form is accepted too; package vault/entra derives
	// the other).
	IssuerURL string `yaml:"issuer_url"`
	ClientID  string `yaml:"client_id"`
	// ClientSecretSealed is the client secret sealed to the runner's
	// public key (output of `azdo-vault seal`), standard base64.
	ClientSecretSealed string `yaml:"client_secret_sealed"`
}

// PAT is the personal access token method.
type PAT struct {
	Enabled bool `yaml:"enabled"`
}

// providerHost splits and checks a provider's host: host[:port] with an
// optional virtual directory (azdo.ParseServer), not on Azure DevOps
// Services.
func providerHost(key, s string) (host, vdir string, err error) {
	hp, path, hasPath := strings.Cut(strings.TrimSpace(s), "/")
	if !hasPath {
		h, err := NormalizeHost(key, s)
		return h, "", err
	}
	h, err := NormalizeHost(key, hp)
	if err != nil {
		return "", "", err
	}
	sv, perr := azdo.ParseServer(h + "/" + path)
	if perr != nil {
		return "", "", errorf(key, ErrBadValue, "%v", perr)
	}
	if azdo.IsServicesHost(h) || strings.HasSuffix(h, ".visualstudio.com") {
		return "", "", errorf(key, ErrBadValue, "%s: Azure DevOps Services has no virtual directory; want %s", quote(s), h)
	}
	return h, sv.VirtualDir, nil
}

// multiTenantIssuer reports whether an Entra issuer URL names no tenant:
// its first path segment is common, organizations or consumers.
func multiTenantIssuer(issuer string) bool {
	u, err := url.Parse(issuer)
	if err != nil {
		return false
	}
	seg, _, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	switch strings.ToLower(seg) {
	case "common", "organizations", "consumers":
		return true
	}
	return false
}

// CallbackURL is the OAuth redirect URI to register in Entra ID.
func (v *VaultFile) CallbackURL() string {
	return strings.TrimSuffix(v.PublicURL, "/") + "/oauth/callback"
}

// LoadVaultFile reads, strictly decodes and validates a vault config file.
// Unknown keys are rejected with their path ("providers[0].oauth.client_ide").
func LoadVaultFile(path string) (*VaultFile, error) {
	root, err := readYAML(ConfigFlag, path)
	if err != nil {
		return nil, err
	}
	var v VaultFile
	if root != nil {
		top := map[string]bool{}
		for _, k := range VaultFlagKeys {
			top[normalizeKey(k)] = true
		}
		if err := checkNode(root, reflect.TypeOf(v), "", top); err != nil {
			return nil, err
		}
		if err := root.Decode(&v); err != nil {
			return nil, errorf(ConfigFlag, ErrBadValue, "%s: %v", quote(path), err)
		}
	}
	if err := v.Validate(); err != nil {
		return nil, err
	}
	return &v, nil
}

// checkNode checks n against the shape of t: known keys only (renamed to
// their canonical spelling so "client-id" decodes as client_id), mappings
// for structs, sequences for slices, scalars for strings and booleans.
// top lists extra keys accepted (and ignored) at this level.
func checkNode(n *yaml.Node, t reflect.Type, path string, top map[string]bool) error {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Tag == "!!null" {
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	key := path
	if key == "" {
		key = ConfigFlag
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return errorf(key, ErrBadValue, "line %d: want a mapping of key: value", n.Line)
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			name := normalizeKey(kn.Value)
			p := joinPath(path, kn.Value)
			if seen[name] {
				return errorf(p, ErrBadValue, "line %d: key set twice", kn.Line)
			}
			seen[name] = true
			f, ok := fieldByKey(t, name)
			if !ok {
				if top[name] {
					continue
				}
				return errorf(p, ErrUnknownKey, "line %d: unknown key; allowed here: %s", kn.Line, allowedKeys(t, top))
			}
			kn.Value = f.Tag.Get("yaml")
			if err := checkNode(vn, f.Type, joinPath(path, kn.Value), nil); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return errorf(key, ErrBadValue, "line %d: want a list", n.Line)
		}
		for i, e := range n.Content {
			if err := checkNode(e, t.Elem(), path+"["+strconv.Itoa(i)+"]", nil); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return errorf(key, ErrBadValue, "line %d: want a mapping of name: value", n.Line)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := checkNode(n.Content[i+1], t.Elem(), joinPath(path, n.Content[i].Value), nil); err != nil {
				return err
			}
		}
	case reflect.Bool:
		if _, err := strconv.ParseBool(n.Value); n.Kind != yaml.ScalarNode || err != nil {
			return errorf(key, ErrBadValue, "line %d: want true or false", n.Line)
		}
	default:
		if n.Kind != yaml.ScalarNode {
			return errorf(key, ErrBadValue, "line %d: want a single value", n.Line)
		}
	}
	return nil
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func fieldByKey(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if tag := f.Tag.Get("yaml"); tag != "" && normalizeKey(tag) == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func allowedKeys(t reflect.Type, top map[string]bool) string {
	var ks []string
	for i := 0; i < t.NumField(); i++ {
		ks = append(ks, t.Field(i).Tag.Get("yaml"))
	}
	for _, k := range VaultFlagKeys {
		if top[normalizeKey(k)] {
			ks = append(ks, k)
		}
	}
	return strings.Join(ks, ", ")
}

// Validate checks the file: public_url absolute (https, or http on
// loopback), at least one provider, each with a valid and unique host and
// at least one method, OAuth settings complete. It normalizes hosts. All
// problems are reported, joined.
func (v *VaultFile) Validate() error {
	var errs []error
	if v.PublicURL == "" {
		errs = append(errs, errorf("public_url", ErrMissing, "required: the https base URL browsers use to reach the vault, e.g. https://runner.example.com:8443"))
	} else if _, err := checkURL("public_url", v.PublicURL); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, v.Identity.validate()...)
	if len(v.Providers) == 0 {
		errs = append(errs, errorf("providers", ErrMissing, "required: at least one provider (host with oauth and/or pat)"))
	}
	hosts := map[string]int{}
	for i := range v.Providers {
		p := &v.Providers[i]
		at := fmt.Sprintf("providers[%d]", i)
		if p.Host == "" {
			errs = append(errs, errorf(at+".host", ErrMissing, "required: dev.azure.com, {org}.visualstudio.com or a self-hosted host[:port]"))
		} else if h, vdir, err := providerHost(at+".host", p.Host); err != nil {
			errs = append(errs, err)
		} else {
			p.VirtualDir = vdir
			if j, dup := hosts[h]; dup {
				errs = append(errs, errorf(at+".host", ErrConflict, "%s is already providers[%d].host; allowed: one provider per host (enable both methods in it)", quote(h), j))
			}
			hosts[h] = i
			p.Host = h
		}
		if p.OAuth == nil && (p.PAT == nil || !p.PAT.Enabled) {
			errs = append(errs, errorf(at, ErrMissing, "no method: allowed: oauth, pat: {enabled: true}, or both"))
		}
		if o := p.OAuth; o != nil {
			if o.IssuerURL == "" {
				errs = append(errs, errorf(at+".oauth.issuer_url", ErrMissing, "required: https://login.microsoftonline.com/<tenant-id>/v2.0"))
			} else if _, err := checkURL(at+".oauth.issuer_url", o.IssuerURL); err != nil {
				errs = append(errs, err)
			} else if v.Identity.Claim == "email" && multiTenantIssuer(o.IssuerURL) {
				errs = append(errs, errorf(at+".oauth.issuer_url", ErrConflict, "%s accepts sign-ins from every tenant, and identity.claim is email: the email claim is not verified, so a user of any tenant could set the owner's address and pass the owner check. Name your tenant in the issuer (https://login.microsoftonline.com/<tenant-id>/v2.0), or use identity.claim preferred_username, upn or oid", quote(o.IssuerURL)))
			}
			if o.ClientID == "" {
				errs = append(errs, errorf(at+".oauth.client_id", ErrMissing, "required: the application (client) ID of the Entra ID app"))
			}
			if o.ClientSecretSealed == "" {
				errs = append(errs, errorf(at+".oauth.client_secret_sealed", ErrMissing, "required: the client secret sealed with `azdo-vault seal --public-key <runner key>`"))
			} else if b, err := base64.StdEncoding.DecodeString(o.ClientSecretSealed); err != nil || len(b) <= sealbox.Overhead {
				// The value is sealed, but still not echoed: it could be a
				// plain secret pasted by mistake.
				errs = append(errs, errorf(at+".oauth.client_secret_sealed", ErrBadValue, "is not a sealed value (standard base64 of more than %d bytes); produce it with `azdo-vault seal`", sealbox.Overhead))
			}
		}
	}
	return errors.Join(errs...)
}

// validate checks the claim and the owners mapping, and sets the default
// claim.
func (id *Identity) validate() []error {
	var errs []error
	if id.Claim == "" {
		id.Claim = "preferred_username"
	}
	ok := false
	for _, c := range IdentityClaims {
		ok = ok || id.Claim == c
	}
	if !ok {
		errs = append(errs, errorf("identity.claim", ErrBadValue, "%s; allowed: %s", quote(id.Claim), strings.Join(IdentityClaims, ", ")))
	}
	for name, want := range id.Owners {
		at := "identity.owners." + name
		switch {
		case strings.TrimSpace(name) == "" || strings.TrimSpace(want) == "":
			errs = append(errs, errorf(at, ErrBadValue, "want platform-user: identity, both non-empty"))
		case id.Claim == "oid" && !guidRE.MatchString(want):
			errs = append(errs, errorf(at, ErrBadValue, "%s is not an object ID (identity.claim is oid)", quote(want)))
		}
	}
	return errs
}

// guidRE matches an Entra ID object ID.
var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
