package atlas

import (
	"context"
	"net/http"
	"net/url"
)

// CustomRole is UserCustomDBRole, the field the bot uses: a project's own role, granted as
// roleName on admin.
type CustomRole struct {
	RoleName string `json:"roleName"`
}

// CustomRoles lists the project's custom database roles.
func (c *Client) CustomRoles(ctx context.Context) ([]CustomRole, error) {
	var out []CustomRole
	err := c.call(ctx, http.MethodGet, "/groups/"+url.PathEscape(c.cfg.ProjectID)+"/customDBRoles/roles", nil, nil, &out, http.StatusOK)
	return out, err
}
