package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"chatd/account"
	"chatd/config"
	"chatd/internal/gcpolicy"
	"chatd/server"
)

const usage = `usage:
  chatd [-config FILE]                                   serve
  chatd app create -name NAME [-config FILE]             create an application
  chatd app list [-config FILE]                          list applications with their keys
  chatd user create -app ID -login LOGIN -password PW [-config FILE]
  chatd apikey create -app ID [-name NAME] [-config FILE]
  chatd repair-history [-grace D] [-config FILE]         delete what interrupted history writes left (MongoDB)
Every command prints what it created or removed as JSON. Configuration: chatd.example.yaml.
`

// run is the whole program; main only supplies the process's context,
// arguments, environment and output.
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stdout, usage)
		return nil
	}
	if len(args) > 0 && args[0] == "repair-history" {
		return repairHistory(ctx, args[1:], environ, stdout, stderr)
	}
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		return admin(ctx, args, environ, stdout, stderr)
	}
	fs := flag.NewFlagSet("chatd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(*path, environ)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	stopGC, tuned := gcpolicy.Start(cfg.Runtime.GCPercent, uint64(cfg.Runtime.GCHeadroomMB)<<20)
	defer stopGC()
	if !tuned {
		log.Info("GOGC is set: runtime.gc_percent and runtime.gc_headroom_mb are not used")
	}
	srv, err := server.Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	log.Info("chatd started", "domain", cfg.Domain, "certificate", srv.CertFile)
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-srv.Err():
		log.Error("stopping after a fatal error", "err", err)
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return errors.Join(err, srv.Shutdown(stopCtx))
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// admin runs an operator command against the configured storage, without
// starting any listener.
// openStores loads the configuration and opens its storage for an admin
// command, logging to stderr. check, when set, may refuse the configuration
// before the storage is opened (and its schema upgraded).
func openStores(ctx context.Context, path string, environ []string, stderr io.Writer,
	check func(*config.Config) error) (*config.Config, *slog.Logger, *server.Stores, error) {
	cfg, err := config.Load(path, environ)
	if err != nil {
		return nil, nil, nil, err
	}
	if check != nil {
		if err := check(cfg); err != nil {
			return nil, nil, nil, err
		}
	}
	log := newLogger(cfg, stderr)
	stores, err := server.OpenStorage(ctx, cfg, log)
	if err != nil {
		return nil, nil, nil, err
	}
	return cfg, log, stores, nil
}

func admin(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		return fmt.Errorf("%q needs a subcommand\n%s", args[0], usage)
	}
	cmd := args[0] + " " + args[1]
	fs := flag.NewFlagSet("chatd "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	name := fs.String("name", "", "name")
	appID := fs.Int64("app", 0, "application id")
	login := fs.String("login", "", "user login")
	password := fs.String("password", "", "user password")
	if err := fs.Parse(args[2:]); err != nil {
		return err
	}
	cfg, log, stores, err := openStores(ctx, *path, environ, stderr, nil)
	if err != nil {
		return err
	}
	defer stores.Close(context.Background())
	accounts := account.NewService(stores.Accounts, cfg.Account(), log)

	var out any
	switch cmd {
	case "app create":
		app, err := accounts.CreateApp(ctx, *name)
		if err != nil {
			return err
		}
		out = appJSON(app)
	case "app list":
		apps, err := accounts.Apps(ctx)
		if err != nil {
			return err
		}
		list := []any{}
		for _, app := range apps {
			list = append(list, appJSON(app))
		}
		out = list
	case "user create":
		if *appID == 0 {
			return errors.New("user create needs -app")
		}
		u, err := accounts.CreateUserAdmin(ctx, *appID, *login, *password)
		if err != nil {
			return err
		}
		out = map[string]any{"user": map[string]any{
			"id": u.ID, "application_id": u.AppID, "login": u.Login,
			"created_at": u.CreatedAt.Format(time.RFC3339),
		}}
	case "apikey create":
		if *appID == 0 {
			return errors.New("apikey create needs -app")
		}
		k, key, err := accounts.CreateAPIKey(ctx, *appID, *name)
		if err != nil {
			return err
		}
		out = map[string]any{"api_key": map[string]any{
			"id": k.ID, "application_id": k.AppID, "name": k.Name, "key": key,
			"created_at": k.CreatedAt.Format(time.RFC3339),
		}}
	default:
		return fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// errSQLiteNoRepair refuses repair-history on SQLite, before the database
// is opened.
var errSQLiteNoRepair = errors.New("repair-history: the SQLite backend needs no repair (its writes are transactions)")

// repairHistory deletes, on MongoDB, the pending documents that history
// writes interrupted by a crash left behind, when older than -grace
// (storage.mongodb_repair_grace unless given), and prints what it removed.
// chatd runs the same pass after every start; a grace of 0 is right only
// while no chatd node runs.
func repairHistory(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chatd repair-history", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	grace := fs.Duration("grace", 0, "leave documents younger than this: their writes may be under way "+
		"(default storage.mongodb_repair_grace)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 || *grace < 0 {
		return fmt.Errorf("repair-history takes -grace (not negative) and -config only\n%s", usage)
	}
	cfg, _, stores, err := openStores(ctx, *path, environ, stderr, func(cfg *config.Config) error {
		if cfg.Storage.MongoDBURI == "" {
			return errSQLiteNoRepair
		}
		return nil
	})
	if err != nil {
		return err
	}
	defer stores.Close(context.Background())
	if stores.RepairHistory == nil {
		return errSQLiteNoRepair
	}
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "grace" })
	if !given {
		*grace = cfg.RepairGrace()
	}
	rep, err := stores.RepairHistory(ctx, *grace)
	if err != nil {
		return fmt.Errorf("repair-history: %w (%d documents removed before it stopped)", err, rep.Removed())
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{"repair_history": map[string]any{
		"scanned": rep.Scanned, "orphaned": rep.Orphaned, "read": rep.Read, "hidden": rep.Hidden,
	}})
}

func appJSON(app *account.Application) map[string]any {
	return map[string]any{"application": map[string]any{
		"id": app.ID, "name": app.Name, "auth_key": app.AuthKey, "auth_secret": app.AuthSecret,
		"created_at": app.CreatedAt.Format(time.RFC3339),
	}}
}
