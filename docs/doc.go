// Package docs holds the project's documentation (Markdown) and the test that keeps it
// honest: every file or folder it names must exist in the repository, and no page may point
// outside it. The Block Kit views in views/ are written by the bot's tests.
package docs
