// Package console is the terminal as the chat, like Hubot's shell adapter: lines typed or
// piped are slash commands and button presses, and what the engine says is printed as text
// from the same bot.Message model Slack gets. A form is asked field by field. Work runs
// synchronously, one line at a time, so a piped script gives the same output every run.
package console
