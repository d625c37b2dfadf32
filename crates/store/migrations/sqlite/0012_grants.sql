-- Roles become grants: a role with an optional scope (a place, a pickup point or digital
-- centre, a programme). One person may hold several. Grants are never deleted: revoking one
-- records who did it and when, so the table is its own audit trail.
CREATE TABLE grants (
  id INTEGER PRIMARY KEY, user_id BIGINT NOT NULL REFERENCES users(id), role TEXT NOT NULL,
  scope_kind TEXT NOT NULL, scope_id BIGINT,
  granted_by BIGINT REFERENCES users(id), granted_at BIGINT NOT NULL,
  revoked_by BIGINT REFERENCES users(id), revoked_at BIGINT
);
CREATE INDEX grants_user ON grants(user_id, revoked_at);
CREATE INDEX grants_scope ON grants(role, scope_kind, scope_id);
-- Every role held so far becomes a grant: admins, couriers and champions everywhere, agents at
-- their centre, operators at the points they run. users.role and users.centre_id are no
-- longer read.
INSERT INTO grants (user_id, role, scope_kind, scope_id, granted_at)
  SELECT id, role, 'everywhere', NULL, created_at FROM users WHERE role IN ('admin', 'courier', 'champion');
INSERT INTO grants (user_id, role, scope_kind, scope_id, granted_at)
  SELECT id, 'agent', 'point', centre_id, created_at FROM users WHERE role = 'agent' AND centre_id IS NOT NULL;
INSERT INTO grants (user_id, role, scope_kind, scope_id, granted_at)
  SELECT operator_id, 'operator', 'point', id, 0 FROM pickup_points WHERE operator_id IS NOT NULL;
