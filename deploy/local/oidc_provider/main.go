// Command oidc-provider runs a real OpenID Provider for local development and tests:
// zitadel/oidc's example OP (its op package, in-memory storage with RS256 keys served at
// /keys, and its own login page), with the Aviso console as its one web client.
//
// Only the wiring differs from the library's example/server main: the provider listens on
// 127.0.0.1 only (the example listens on every interface), and the issuer, the client's
// id, secret and redirect URIs and the users file come from the environment, so that each
// test run can use a free port and a secret of its own.
package main

import (
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
)

func required(logger *slog.Logger, name string) string {
	value := os.Getenv(name)
	if value == "" {
		logger.Error("missing environment variable", "name", name)
		os.Exit(2)
	}
	return value
}

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	listen := required(logger, "OIDC_LISTEN") // 127.0.0.1:PORT
	issuer := required(logger, "OIDC_ISSUER") // http://localhost:PORT/
	clientID := required(logger, "OIDC_CLIENT_ID")
	secret := required(logger, "OIDC_CLIENT_SECRET")
	redirects := strings.Split(required(logger, "OIDC_REDIRECT_URIS"), ",")
	usersFile := required(logger, "OIDC_USERS_FILE")

	storage.RegisterClients(storage.WebClient(clientID, secret, redirects...))
	users, err := storage.StoreFromFile(usersFile)
	if err != nil {
		logger.Error("cannot read the users file", "error", err)
		os.Exit(2)
	}
	router := exampleop.SetupServer(issuer, storage.NewStorage(users), logger, false)
	server := &http.Server{Addr: listen, Handler: router, ReadHeaderTimeout: 10 * time.Second}
	logger.Info("listening", "addr", listen, "issuer", issuer)
	if err := server.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		logger.Error("server terminated", "error", err)
		os.Exit(1)
	}
}
