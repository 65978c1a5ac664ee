package main

import "fmt"

// plural is "1 object", "2 objects": every count in human output.
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
