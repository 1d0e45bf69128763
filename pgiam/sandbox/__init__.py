"""A local PostgreSQL that checks RDS IAM tokens the way RDS does: sigv4check, ldapd, cluster."""
