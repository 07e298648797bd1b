package config

import "github.com/urfave/cli/v2"

// Flag names of azdo-vault shared by several commands.
const (
	FlagKeyFile = "key-file"
	FlagStore   = "store"
)

// DefaultStore is the vault's default store: an embedded SQLite file in the
// working directory.
const DefaultStore = "sqlite:azdo-vault.db"

// VaultFlagKeys are the keys of azdo-vault flags that a vault config file
// may carry besides public_url and providers (LoadVaultFile accepts them;
// the flags read them through Prepare).
var VaultFlagKeys = []string{
	FlagLogFormat, FlagLogLevel, FlagKeyFile, FlagStore, FlagListen,
	FlagUpstreamCAFile, "tls-cert", "tls-key", "insecure-listen-any", "audit-retention", "pid-file", "check-config",
}

// KeyFileFlag is --key-file, the runner's private key (mode 0600).
func KeyFileFlag() *cli.StringFlag {
	return &cli.StringFlag{Name: FlagKeyFile, Usage: "`FILE` holding the runner's private key (mode 0600)", TakesFile: true}
}

// StoreFlag is --store, where the vault keeps environments and credentials.
func StoreFlag() cli.Flag {
	return &cli.StringFlag{Name: FlagStore, Value: DefaultStore, Usage: "`URL` of the store: sqlite:PATH (embedded, one host) or postgres://… (several replicas)"}
}
