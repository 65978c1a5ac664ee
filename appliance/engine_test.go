package appliance

import "testing"

func TestDSNHasPassword(t *testing.T) {
	for dsn, want := range map[string]bool{
		"postgres://u:secret@h/db":             true,
		"postgres://u@h/db":                    false,
		"postgres://u@h/db?password=x":         true,
		"host=h user=u dbname=d":               false,
		"host=h user=u password=x dbname=d":    true,
		"u:secret@tcp(127.0.0.1:3306)/db":      true,
		"u@tcp(127.0.0.1:3306)/db":             false,
		"root@unix(/run/mysqld/mysqld.sock)/d": false,
	} {
		if got := DSNHasPassword(dsn); got != want {
			t.Errorf("DSNHasPassword(%q) = %v, want %v", dsn, got, want)
		}
	}
}
