package atlas

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// DatabaseUser is CloudDatabaseUser (#/components/schemas/CloudDatabaseUser), the fields the
// bot uses. GroupID is writeOnly in the spec and required in every body, PATCH included
// (the spec reuses the whole schema there): the client always sends it.
type DatabaseUser struct {
	DatabaseName string `json:"databaseName"`
	GroupID      string `json:"groupId,omitempty"`
	Username     string `json:"username"`
	// Password is writeOnly: sent, never returned. Encoded by the caller just before the call
	// and never kept in anything logged.
	Password        string     `json:"password,omitempty"`
	Roles           []Role     `json:"roles,omitempty"`
	Scopes          []Scope    `json:"scopes,omitempty"`
	DeleteAfterDate *time.Time `json:"deleteAfterDate,omitempty"`
	Description     string     `json:"description,omitempty"`
	Labels          []Label    `json:"labels,omitempty"`
	AWSIAMType      string     `json:"awsIAMType,omitempty"`
	LDAPAuthType    string     `json:"ldapAuthType,omitempty"`
	OIDCAuthType    string     `json:"oidcAuthType,omitempty"`
	X509Type        string     `json:"x509Type,omitempty"`
}

// Role is DatabaseUserRole. The spec's roleName enum holds Atlas's built-in roles and the
// literal placeholder "<a custom role name>": its description says a custom role's name is
// allowed too, which is what Atlas does.
type Role struct {
	DatabaseName   string `json:"databaseName"`
	RoleName       string `json:"roleName"`
	CollectionName string `json:"collectionName,omitempty"`
}

// Scope is UserScope: the cluster (or data lake, stream instance) a user may reach. Without
// scopes a user reaches every one of the project's.
type Scope struct {
	Name string `json:"name"`
	Type string `json:"type"` // CLUSTER, DATA_LAKE or STREAM
}

// Label is ComponentLabel.
type Label struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// SCRAM reports whether u logs in with a password (no external authentication).
func (u DatabaseUser) SCRAM() bool {
	none := func(s string) bool { return s == "" || s == "NONE" }
	return u.DatabaseName == "admin" && none(u.AWSIAMType) && none(u.LDAPAuthType) && none(u.OIDCAuthType) && none(u.X509Type)
}

func userPath(project, db, user string) string {
	return "/groups/" + url.PathEscape(project) + "/databaseUsers/" + url.PathEscape(db) + "/" + url.PathEscape(user)
}

// pageSize is how many users a page asks for: the spec's most (itemsPerPage 1-500).
const pageSize = 500

// Users lists every database user of the project, page by page.
func (c *Client) Users(ctx context.Context) ([]DatabaseUser, error) {
	var all []DatabaseUser
	for page := 1; ; page++ {
		var p struct {
			Results    []DatabaseUser `json:"results"`
			TotalCount *int           `json:"totalCount"`
		}
		q := url.Values{"itemsPerPage": {strconv.Itoa(pageSize)}, "pageNum": {strconv.Itoa(page)}}
		if err := c.call(ctx, http.MethodGet, "/groups/"+url.PathEscape(c.cfg.ProjectID)+"/databaseUsers", q, nil, &p, http.StatusOK); err != nil {
			return nil, err
		}
		all = append(all, p.Results...)
		// totalCount may be an estimate (its description says so): stop on a short page too.
		if len(p.Results) < pageSize || p.TotalCount != nil && len(all) >= *p.TotalCount {
			return all, nil
		}
	}
}

// User reads one database user.
func (c *Client) User(ctx context.Context, db, user string) (DatabaseUser, error) {
	var u DatabaseUser
	err := c.call(ctx, http.MethodGet, userPath(c.cfg.ProjectID, db, user), nil, nil, &u, http.StatusOK)
	return u, err
}

// CreateUser creates u (201).
func (c *Client) CreateUser(ctx context.Context, u DatabaseUser) (DatabaseUser, error) {
	u.GroupID = c.cfg.ProjectID
	var out DatabaseUser
	err := c.call(ctx, http.MethodPost, "/groups/"+url.PathEscape(c.cfg.ProjectID)+"/databaseUsers", nil, u, &out, http.StatusCreated)
	return out, err
}

// UpdateUser replaces what u sets of user db/name (PATCH). The API replaces a list it is
// given (roles, scopes) whole; what the spec does not say, Atlas's documentation does: a field
// left out is kept.
func (c *Client) UpdateUser(ctx context.Context, u DatabaseUser) (DatabaseUser, error) {
	u.GroupID = c.cfg.ProjectID
	var out DatabaseUser
	err := c.call(ctx, http.MethodPatch, userPath(c.cfg.ProjectID, u.DatabaseName, u.Username), nil, u, &out, http.StatusOK)
	return out, err
}

// DeleteUser deletes user db/name (204).
func (c *Client) DeleteUser(ctx context.Context, db, user string) error {
	return c.call(ctx, http.MethodDelete, userPath(c.cfg.ProjectID, db, user), nil, nil, nil, http.StatusNoContent)
}

// CanManage says, without changing anything, whether the credential may create database
// users: it asks to create one whose deleteAfterDate is in the past, which Atlas refuses as
// invalid (400) when the credential has the permission, and as forbidden (403) when it has
// not. The spec does not say which check comes first; Atlas's permission check does.
func (c *Client) CanManage(ctx context.Context) (bool, error) {
	past := time.Unix(0, 0).UTC()
	pw := make([]byte, 24)
	if _, err := rand.Read(pw); err != nil {
		return false, err
	}
	// A random password, a single role and a scope of no cluster: were it ever created, it
	// could reach nothing, and nobody knows its password.
	_, err := c.CreateUser(ctx, DatabaseUser{DatabaseName: "admin", Username: "mongobot-permission-check", Password: hex.EncodeToString(pw),
		Roles: []Role{{DatabaseName: "mongobot_permission_check", RoleName: "read"}}, Scopes: []Scope{{Name: "mongobot-no-such-cluster", Type: "CLUSTER"}},
		DeleteAfterDate: &past})
	switch {
	case errors.Is(err, &Error{Kind: ErrInvalid}):
		return true, nil
	case errors.Is(err, &Error{Kind: ErrForbidden}):
		return false, nil
	case err == nil:
		// Created after all: remove it at once, and say that the probe misbehaved.
		derr := c.DeleteUser(ctx, "admin", "mongobot-permission-check")
		return true, fmt.Errorf("atlas: the permission check created its probe user (deleteAfterDate in the past was accepted); deleting it: %v", derr)
	}
	return false, err
}
