//go:build race

package main

// raceEnabled makes the end-to-end tests build the tollgate binary with -race too.
const raceEnabled = true
