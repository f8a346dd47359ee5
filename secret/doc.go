// Package secret holds the one type that carries passwords and connection strings through the
// bot. Printing, logging or JSON-encoding a String never shows its value; only Reveal does, and
// only the code that must send the value somewhere (the driver, the one-time reveal) calls it.
package secret
