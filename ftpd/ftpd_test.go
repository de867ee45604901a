package ftpd

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jlaffaye/ftp"
	"golang.org/x/crypto/bcrypt"
)

func TestLogin(t *testing.T) {
	e := startEnv(t, nil)
	tests := []struct {
		name, user, pass string
		wantCode         int
		wantOutcome      string
	}{
		{"right password", userA, passA, 0, OutcomeOK},
		{"wrong password", userA, "nope", 530, OutcomeBadPassword},
		{"unknown user", "nobody", passA, 530, OutcomeUnknownUser},
		{"other account's password", userB, passA, 530, OutcomeBadPassword},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := e.dial()
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = c.Quit() }()
			err = c.Login(tt.user, tt.pass)
			if got := replyCode(err); got != tt.wantCode {
				t.Fatalf("login error %v (code %d), want code %d", err, got, tt.wantCode)
			}
			_, _, logins := e.rec.snapshot()
			if len(logins) == 0 || logins[len(logins)-1] != tt.wantOutcome {
				t.Fatalf("outcomes %v, want last %q", logins, tt.wantOutcome)
			}
		})
	}
}

func TestLoginFailuresLookAlike(t *testing.T) {
	e := startEnv(t, nil)
	reply := func(user, pass string) string {
		raw := dialRaw(t, e.addr, "")
		if code, msg := raw.cmd("USER %s", user); code != 331 {
			t.Fatalf("USER %s: %d %s", user, code, msg)
		}
		code, msg := raw.cmd("PASS %s", pass)
		if code != 530 {
			t.Fatalf("PASS for %s: %d %s", user, code, msg)
		}
		return msg
	}
	if unknown, wrong := reply("nobody", "x"), reply(userA, "x"); unknown != wrong {
		t.Fatalf("unknown user %q and wrong password %q differ", unknown, wrong)
	}
	// Unknown users are checked against a hash as costly as the accounts'.
	if cost, err := bcrypt.Cost(e.srv.dummyHash); err != nil || cost != bcrypt.MinCost {
		t.Fatalf("dummy hash cost %d %v, want the accounts' %d", cost, err, bcrypt.MinCost)
	}
}

func TestUploadInbox(t *testing.T) {
	e := startEnv(t, nil)
	c := e.login(userA, passA)
	inbox := e.dir(userA)

	if err := c.Stor("sms.txt", strings.NewReader("U-DEMO\nT-hello\n#-447700900123\n")); err != nil {
		t.Fatalf("STOR: %v", err)
	}
	if got := readFile(t, filepath.Join(inbox, "sms.txt")); got != "U-DEMO\nT-hello\n#-447700900123\n" {
		t.Fatalf("content %q", got)
	}
	// A second upload under the same name replaces the first.
	if err := c.Stor("/sms.txt", strings.NewReader("second")); err != nil {
		t.Fatalf("STOR again: %v", err)
	}
	if got := readFile(t, filepath.Join(inbox, "sms.txt")); got != "second" {
		t.Fatalf("content after replace %q", got)
	}
	// Names the watcher ignores may still be uploaded, to be renamed later.
	for _, name := range []string{"a.tmp", "b.part", "c.filepart", "d.txt~", "empty.txt"} {
		content := "x"
		if name == "empty.txt" {
			content = ""
		}
		if err := c.Stor(name, strings.NewReader(content)); err != nil {
			t.Fatalf("STOR %s: %v", name, err)
		}
	}
	uploads, _, _ := e.rec.snapshot()
	want := []string{"demo/sms.txt", "demo/sms.txt", "demo/a.tmp", "demo/b.part", "demo/c.filepart", "demo/d.txt~", "demo/empty.txt"}
	if !slices.Equal(uploads, want) {
		t.Fatalf("OnUpload calls %v, want %v", uploads, want)
	}
	got := files(t, inbox)
	slices.Sort(got)
	if want := []string{"a.tmp", "b.part", "c.filepart", "d.txt~", "empty.txt", "sms.txt"}; !slices.Equal(got, want) {
		t.Fatalf("inbox %v, want %v (no temporary file left)", got, want)
	}
	if fi, err := os.Stat(filepath.Join(inbox, "empty.txt")); err != nil || fi.Size() != 0 {
		t.Fatalf("empty upload: %v %v", fi, err)
	}
}

func TestUploadWithCurl(t *testing.T) {
	e := startEnv(t, nil)
	src := filepath.Join(t.TempDir(), "batch.txt")
	writeFile(t, src, "U-DEMO\nT-hi\n#-447700900123\n")
	out, err := curl(t, "-T", src, fmt.Sprintf("ftp://%s:%s@%s/", userA, passA, e.addr))
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	if got := readFile(t, filepath.Join(e.dir(userA), "batch.txt")); got != "U-DEMO\nT-hi\n#-447700900123\n" {
		t.Fatalf("content %q", got)
	}
	if uploads, _, _ := e.rec.snapshot(); !slices.Equal(uploads, []string{"demo/batch.txt"}) {
		t.Fatalf("OnUpload calls %v", uploads)
	}
}

func TestRefusedWithCurl(t *testing.T) {
	e := startEnv(t, nil)
	target := filepath.Join(e.dir(userA), "results", "x.csv")
	writeFile(t, target, "a,b\n")
	before, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, quote string
	}{
		{"site chmod", "SITE CHMOD 777 results/x.csv"},
		{"mfmt", "MFMT 20200101000000 results/x.csv"},
		{"mkd", "MKD newdir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := curl(t, "-Q", tt.quote, fmt.Sprintf("ftp://%s:%s@%s/", userA, passA, e.addr))
			if err == nil {
				t.Fatalf("curl accepted %q:\n%s", tt.quote, out)
			}
			if !strings.Contains(out, "QUOT command failed") {
				t.Fatalf("curl output %q, want a failed quote command", out)
			}
		})
	}
	after, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	if after.Mode() != before.Mode() || !after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("file changed: %v %v -> %v %v", before.Mode(), before.ModTime(), after.Mode(), after.ModTime())
	}
	if _, err := os.Stat(filepath.Join(e.dir(userA), "newdir")); !os.IsNotExist(err) {
		t.Fatalf("MKD created a folder: %v", err)
	}
}

func TestRefusedCommands(t *testing.T) {
	e := startEnv(t, nil)
	inbox := e.dir(userA)
	writeFile(t, filepath.Join(inbox, "sms.txt"), "hello")
	writeFile(t, filepath.Join(inbox, "results", "sms.txt.report"), "state: done\n")
	c := e.login(userA, passA)

	tests := []struct {
		name string
		do   func() error
		want int
	}{
		{"STOR into results", func() error { return c.Stor("/results/x.txt", strings.NewReader("x")) }, 553},
		{"STOR into scheduled relative", func() error { return c.Stor("scheduled/x.txt", strings.NewReader("x")) }, 553},
		{"STOR under the server's temporary prefix", func() error { return c.Stor(tempPrefix+"x", strings.NewReader("x")) }, 553},
		{"STOR backslash", func() error { return c.Stor(`a\b.txt`, strings.NewReader("x")) }, 553},
		{"STOR control character", func() error { return c.Stor("a\x01b.txt", strings.NewReader("x")) }, 553},
		{"STOR name too long", func() error { return c.Stor(strings.Repeat("n", maxNameLen+1), strings.NewReader("x")) }, 553},
		{"STOR temp suffix", func() error { return c.Stor("x"+tempSuffix, strings.NewReader("x")) }, 553},
		{"STOR over a folder", func() error { return c.Stor("results", strings.NewReader("x")) }, 553},
		{"APPE", func() error { return c.Append("sms.txt", strings.NewReader("more")) }, 550},
		{"REST then STOR", func() error { return c.StorFrom("sms.txt", strings.NewReader("more"), 3) }, 550},
		{"MKD", func() error { return c.MakeDir("newdir") }, 550},
		{"MKD in results", func() error { return c.MakeDir("/results/newdir") }, 550},
		{"RMD", func() error { return c.RemoveDir("/results") }, 550},
		{"DELE a folder", func() error { return c.Delete("/replies") }, 550},
		{"RNTO into archive", func() error { return c.Rename("sms.txt", "/archive/sms.txt") }, 553},
		{"RNFR from results", func() error { return c.Rename("/results/sms.txt.report", "stolen.txt") }, 550},
		{"RNTO the server's temporary prefix", func() error { return c.Rename("sms.txt", tempPrefix+"sms.txt") }, 553},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			if got := replyCode(err); got != tt.want {
				t.Fatalf("error %v (code %d), want code %d", err, got, tt.want)
			}
		})
	}

	raw := dialRaw(t, e.addr, "")
	raw.login(userA, passA)
	rawTests := []struct {
		cmd  string
		want int
	}{
		{"SITE CHMOD 777 sms.txt", 500},
		{"SITE SYMLINK /etc/passwd pw", 500},
		{"MFMT 20200101000000 sms.txt", 550},
		{"XMKD other", 550},
		{"XRMD results", 550},
	}
	for _, tt := range rawTests {
		t.Run(tt.cmd, func(t *testing.T) {
			if code, msg := raw.cmd("%s", tt.cmd); code != tt.want {
				t.Fatalf("%s: %d %s, want %d", tt.cmd, code, msg, tt.want)
			}
		})
	}

	// Nothing changed on disk.
	if got := readFile(t, filepath.Join(inbox, "sms.txt")); got != "hello" {
		t.Fatalf("sms.txt now %q", got)
	}
	got := files(t, inbox)
	if !slices.Equal(got, []string{"sms.txt"}) {
		t.Fatalf("inbox %v", got)
	}
	for _, sub := range subFolders {
		entries, err := os.ReadDir(filepath.Join(inbox, sub))
		if err != nil {
			t.Fatalf("folder %s: %v", sub, err)
		}
		if sub == "results" && len(entries) == 1 {
			continue
		}
		if len(entries) != 0 {
			t.Fatalf("folder %s has %d entries", sub, len(entries))
		}
	}
	if uploads, _, _ := e.rec.snapshot(); len(uploads) != 0 {
		t.Fatalf("OnUpload called: %v", uploads)
	}
}

func TestRenameInInbox(t *testing.T) {
	e := startEnv(t, nil)
	inbox := e.dir(userA)
	c := e.login(userA, passA)
	if err := c.Stor("batch.tmp", strings.NewReader("content")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(inbox, "old.txt"), "older")
	if err := c.Rename("batch.tmp", "old.txt"); err != nil {
		t.Fatalf("rename over an existing file: %v", err)
	}
	if got := readFile(t, filepath.Join(inbox, "old.txt")); got != "content" {
		t.Fatalf("old.txt is %q", got)
	}
	if err := c.Rename("/old.txt", "/new.txt"); err != nil {
		t.Fatalf("rename with absolute paths: %v", err)
	}
	if got := files(t, inbox); !slices.Equal(got, []string{"new.txt"}) {
		t.Fatalf("inbox %v", got)
	}
	uploads, _, _ := e.rec.snapshot()
	if want := []string{"demo/batch.tmp", "demo/old.txt", "demo/new.txt"}; !slices.Equal(uploads, want) {
		t.Fatalf("OnUpload calls %v, want %v", uploads, want)
	}
	if err := c.Rename("new.txt", "/archive/new.txt"); replyCode(err) != 553 {
		t.Fatalf("rename into archive: %v", err)
	}
	if got := files(t, filepath.Join(inbox, "archive")); len(got) != 0 {
		t.Fatalf("archive %v", got)
	}
}

func TestFoldersReadAndDelete(t *testing.T) {
	e := startEnv(t, nil)
	root := e.dir(userA)
	report := "batch: 12\nstate: done\n"
	writeFile(t, filepath.Join(root, "results", "sms.txt.report"), report)
	writeFile(t, filepath.Join(root, "results", "sms.txt.csv"), "line,message\n")
	writeFile(t, filepath.Join(root, "scheduled", "12_sms.txt"), "U-DEMO\n")
	writeFile(t, filepath.Join(root, "archive", "11_a.txt"), "U-DEMO\n")
	// Hidden files (a results writer's temporary file, an upload in
	// progress) are neither listed nor readable.
	writeFile(t, filepath.Join(root, "results", ".sms.txt.report.tmp"), "half")
	writeFile(t, filepath.Join(root, TempName("up.txt")), "half")
	c := e.login(userA, passA)

	t.Run("MLSD", func(t *testing.T) {
		entries, err := c.List("/results")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, en := range entries {
			names = append(names, en.Name)
		}
		if !slices.Equal(names, []string{"sms.txt.csv", "sms.txt.report"}) {
			t.Fatalf("MLSD %v", names)
		}
	})
	t.Run("hidden files", func(t *testing.T) {
		if r, err := c.Retr("/results/.sms.txt.report.tmp"); err == nil {
			_ = r.Close()
			t.Fatal("RETR of a hidden file succeeded")
		}
		if err := c.Delete("/results/.sms.txt.report.tmp"); err == nil {
			t.Fatal("DELE of a hidden file succeeded")
		}
	})
	t.Run("LIST", func(t *testing.T) {
		lc := e.login(userA, passA, ftp.DialWithForceListHidden(true))
		entries, err := lc.List("")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, en := range entries {
			names = append(names, en.Name)
		}
		if want := []string{"archive", "rejected", "replies", "results", "scheduled"}; !slices.Equal(names, want) {
			t.Fatalf("LIST %v, want %v", names, want)
		}
	})
	t.Run("NLST", func(t *testing.T) {
		names, err := c.NameList("/scheduled")
		if err != nil {
			t.Fatal(err)
		}
		// NLST names are relative to the working directory (RFC 959).
		if !slices.Equal(names, []string{"scheduled/12_sms.txt"}) {
			t.Fatalf("NLST %v", names)
		}
	})
	t.Run("SIZE and MDTM", func(t *testing.T) {
		size, err := c.FileSize("/results/sms.txt.report")
		if err != nil || size != int64(len(report)) {
			t.Fatalf("SIZE %d %v", size, err)
		}
		fi, err := os.Stat(filepath.Join(root, "results", "sms.txt.report"))
		if err != nil {
			t.Fatal(err)
		}
		mt, err := c.GetTime("/results/sms.txt.report")
		if err != nil || !mt.Equal(fi.ModTime().UTC().Truncate(1e9)) {
			t.Fatalf("MDTM %v %v, want %v", mt, err, fi.ModTime())
		}
	})
	t.Run("RETR", func(t *testing.T) {
		if err := c.ChangeDir("/results"); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.ChangeDir("/") }()
		r, err := c.Retr("sms.txt.report")
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		_ = r.Close()
		if err != nil || string(got) != report {
			t.Fatalf("RETR %q %v", got, err)
		}
	})
	t.Run("DELE", func(t *testing.T) {
		for _, p := range []string{"/results/sms.txt.csv", "/scheduled/12_sms.txt", "archive/11_a.txt"} {
			if err := c.Delete(p); err != nil {
				t.Fatalf("DELE %s: %v", p, err)
			}
		}
		for _, p := range []string{"results/sms.txt.csv", "scheduled/12_sms.txt", "archive/11_a.txt"} {
			if _, err := os.Stat(filepath.Join(root, p)); !os.IsNotExist(err) {
				t.Fatalf("%s still there: %v", p, err)
			}
		}
		_, deletes, _ := e.rec.snapshot()
		want := []string{"demo/results/sms.txt.csv", "demo/scheduled/12_sms.txt", "demo/archive/11_a.txt"}
		if !slices.Equal(deletes, want) {
			t.Fatalf("OnDelete calls %v, want %v", deletes, want)
		}
		if err := c.Delete("/scheduled/12_sms.txt"); replyCode(err) != 550 {
			t.Fatalf("second DELE: %v", err)
		}
	})
}

func TestNoHostPathInReplies(t *testing.T) {
	e := startEnv(t, nil)
	writeFile(t, filepath.Join(e.dir(userA), "sms.txt"), "hello")
	raw := dialRaw(t, e.addr, "")
	raw.login(userA, passA)
	tests := []struct {
		cmd    string
		failed bool
	}{
		{"RETR missing.txt", true},
		{"RETR ../../etc/passwd", true},
		{"RETR /../../../../etc/passwd", true},
		{"RETR /scheduled", true},
		{"SIZE ../../etc/passwd", true},
		{"MDTM missing.txt", true},
		{"CWD ../../../etc", true},
		{"CWD /missing", true},
		{"DELE ../../etc/passwd", true},
		{"DELE missing.txt", true},
		{"RNFR missing.txt", true},
		{"MLST missing.txt", true},
		{"STAT missing.txt", true},
		{"STOR ../" + userB + "/x.txt", true},
		{"MKD /results/x", true},
		{"SIZE sms.txt", false},
		{"PWD", false},
	}
	for _, tt := range tests {
		t.Run(tt.cmd, func(t *testing.T) {
			cmd := tt.cmd
			if strings.HasPrefix(cmd, "RETR") || strings.HasPrefix(cmd, "STOR") {
				raw.openData()
			}
			code, msg := raw.cmd("%s", cmd)
			if failed := code >= 400; failed != tt.failed {
				t.Fatalf("%s: %d %s", cmd, code, msg)
			}
			for _, leak := range []string{e.data, "accounts/"} {
				if strings.Contains(msg, leak) {
					t.Fatalf("%s: reply %q shows host path %q", cmd, msg, leak)
				}
			}
		})
	}
	for _, msg := range raw.replies {
		if strings.Contains(msg, e.data) {
			t.Fatalf("reply %q shows the host path", msg)
		}
	}
	if _, err := os.Stat(filepath.Join(e.dir(userB), "x.txt")); !os.IsNotExist(err) {
		t.Fatalf("upload reached the other account: %v", err)
	}
}

func TestSymlinksNotFollowed(t *testing.T) {
	e := startEnv(t, nil)
	root := e.dir(userA)
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.txt")
	writeFile(t, secret, "top secret")
	links := map[string]string{
		filepath.Join(root, "dirlink"):             outside,
		filepath.Join(root, "filelink"):            secret,
		filepath.Join(root, "results", "rlink"):    secret,
		filepath.Join(root, "results", "etclink"):  "/etc",
		filepath.Join(root, "scheduled", "uplink"): root,
	}
	for link, target := range links {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	c := e.login(userA, passA)

	for _, p := range []string{"filelink", "/results/rlink", "dirlink/secret.txt", "/results/etclink/passwd", "/scheduled/uplink/filelink"} {
		t.Run("RETR "+p, func(t *testing.T) {
			r, err := c.Retr(p)
			if err == nil {
				got, _ := io.ReadAll(r)
				_ = r.Close()
				t.Fatalf("RETR %s succeeded: %q", p, got)
			}
		})
	}
	for _, p := range []string{"dirlink", "/results/etclink", "/scheduled/uplink"} {
		t.Run("LIST "+p, func(t *testing.T) {
			if entries, err := c.List(p); err == nil {
				t.Fatalf("LIST %s succeeded: %v", p, entries)
			}
		})
		t.Run("CWD "+p, func(t *testing.T) {
			if err := c.ChangeDir(p); err == nil {
				t.Fatalf("CWD %s succeeded", p)
			}
		})
	}
	for _, p := range []string{"filelink", "/results/rlink", "dirlink/secret.txt"} {
		t.Run("DELE "+p, func(t *testing.T) {
			if err := c.Delete(p); err == nil {
				t.Fatalf("DELE %s succeeded", p)
			}
		})
	}
	t.Run("SIZE", func(t *testing.T) {
		if _, err := c.FileSize("filelink"); err == nil {
			t.Fatal("SIZE through a symlink succeeded")
		}
	})
	t.Run("STOR over a symlink", func(t *testing.T) {
		if err := c.Stor("filelink", strings.NewReader("overwritten")); replyCode(err) != 553 {
			t.Fatalf("STOR over a symlink: %v", err)
		}
	})
	t.Run("RNFR a symlink", func(t *testing.T) {
		if err := c.Rename("filelink", "mine.txt"); err == nil {
			t.Fatal("rename of a symlink succeeded")
		}
	})
	t.Run("listings hide symlinks", func(t *testing.T) {
		for _, dir := range []string{"/", "/results", "/scheduled"} {
			entries, err := c.List(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, en := range entries {
				if strings.Contains(en.Name, "link") {
					t.Fatalf("LIST %s shows %s", dir, en.Name)
				}
			}
		}
	})
	if got := readFile(t, secret); got != "top secret" {
		t.Fatalf("target changed: %q", got)
	}
	for link := range links {
		if _, err := os.Lstat(link); err != nil {
			t.Fatalf("link %s gone: %v", link, err)
		}
	}
}

func TestAccountsAreIsolated(t *testing.T) {
	e := startEnv(t, nil)
	writeFile(t, filepath.Join(e.dir(userB), "b-secret.txt"), "b's data")
	writeFile(t, filepath.Join(e.dir(userB), "results", "b.report"), "b's report")
	a := e.login(userA, passA)
	for _, p := range []string{"/../" + userB + "/b-secret.txt", "../" + userB + "/b-secret.txt", "/b-secret.txt", "../../accounts/" + userB + "/results/b.report"} {
		if r, err := a.Retr(p); err == nil {
			got, _ := io.ReadAll(r)
			_ = r.Close()
			t.Fatalf("A read %s: %q", p, got)
		}
	}
	entries, err := a.List("/")
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		if strings.HasPrefix(en.Name, "b") {
			t.Fatalf("A sees %s", en.Name)
		}
	}
	if err := a.Stor("mine.txt", strings.NewReader("a's")); err != nil {
		t.Fatal(err)
	}
	b := e.login(userB, passB)
	if _, err := b.FileSize("mine.txt"); err == nil {
		t.Fatal("B sees A's upload")
	}
	if _, err := b.FileSize("b-secret.txt"); err != nil {
		t.Fatalf("B cannot see its own file: %v", err)
	}

	// The driver itself, given paths the library would have cleaned, stays
	// in its account too.
	d := newClientDriver(e.srv, e.srv.accounts[userA], 0)
	for _, p := range []string{"../demo2/b-secret.txt", "/../demo2/b-secret.txt", "../../accounts/demo2/b-secret.txt"} {
		if _, err := d.Stat(p); err == nil {
			t.Fatalf("driver Stat(%q) reached account B", p)
		}
	}
}

func TestAbortedUploadLeavesNothing(t *testing.T) {
	chunk := bytes.Repeat([]byte("T-partial upload\n"), 4096)
	tests := []struct {
		name  string
		abort func(t *testing.T, raw *rawClient, data interface{ Close() error })
	}{
		{"data connection reset", func(t *testing.T, raw *rawClient, data interface{ Close() error }) {
			if err := data.(interface{ SetLinger(int) error }).SetLinger(0); err != nil {
				t.Fatal(err)
			}
			_ = data.Close()
			if code, msg := raw.read(); code < 400 {
				t.Fatalf("reply after reset: %d %s", code, msg)
			}
		}},
		{"ABOR", func(t *testing.T, raw *rawClient, _ interface{ Close() error }) {
			if code, msg := raw.cmd("ABOR"); code != 426 {
				t.Fatalf("ABOR: %d %s", code, msg)
			}
			if code, msg := raw.read(); code != 226 {
				t.Fatalf("ABOR end: %d %s", code, msg)
			}
			// Commands wait for the transfer to be closed: once NOOP is
			// answered, the upload has been dropped.
			if code, msg := raw.cmd("NOOP"); code != 200 {
				t.Fatalf("NOOP: %d %s", code, msg)
			}
		}},
		{"control connection lost", func(t *testing.T, raw *rawClient, _ interface{ Close() error }) {
			_ = raw.conn.Close()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startEnv(t, nil)
			raw := dialRaw(t, e.addr, "")
			raw.login(userA, passA)
			data := raw.openData()
			if code, msg := raw.cmd("STOR big.txt"); code != 150 {
				t.Fatalf("STOR: %d %s", code, msg)
			}
			if _, err := data.Write(chunk); err != nil {
				t.Fatal(err)
			}
			// The temporary file exists while the upload runs, hidden.
			eventually(t, "temporary file", func() bool {
				names := files(t, e.dir(userA))
				return len(names) == 1 && isTempName(names[0])
			})
			tt.abort(t, raw, data)
			// Stop waits for every upload to be closed.
			if err := e.srv.Stop(); err != nil {
				t.Fatal(err)
			}
			if got := files(t, e.dir(userA)); len(got) != 0 {
				t.Fatalf("inbox after an aborted upload: %v", got)
			}
			if uploads, _, _ := e.rec.snapshot(); len(uploads) != 0 {
				t.Fatalf("OnUpload called: %v", uploads)
			}
		})
	}
}

// An upload over max_file_size is accepted with its first max_file_size+1
// bytes, so that the gateway rejects it with a report (SPEC §2); before, a
// 552 cut it off and the client never got a result file. The rest is read
// and dropped: the disk holds no more than the limit allows.
func TestMaxFileSize(t *testing.T) {
	const limit = 1000
	e := startEnv(t, func(c *Config) { c.Accounts[0].MaxFileSize = limit })
	c := e.login(userA, passA)
	tests := []struct {
		name string
		size int
		kept int
	}{
		{"at the limit", limit, limit},
		{"one byte over", limit + 1, limit + 1},
		{"far over", 4 << 20, limit + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := c.Stor("f.txt", bytes.NewReader(bytes.Repeat([]byte("x"), tt.size))); err != nil {
				t.Fatalf("STOR %d bytes: %v", tt.size, err)
			}
			got, err := os.ReadFile(filepath.Join(e.dir(userA), "f.txt"))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.kept {
				t.Fatalf("kept %d bytes, want %d", len(got), tt.kept)
			}
			if err := os.Remove(filepath.Join(e.dir(userA), "f.txt")); err != nil {
				t.Fatal(err)
			}
		})
	}
	// ALLO of a size over the limit is no reason to refuse either.
	r := dialRaw(t, e.addr, "")
	r.login(userA, passA)
	if code, msg := r.cmd("ALLO 5000000"); code >= 400 {
		t.Fatalf("ALLO over max_file_size: %d %s", code, msg)
	}
}

func TestQuota(t *testing.T) {
	const quota = 10000
	e := startEnv(t, func(c *Config) { c.Accounts[0].Quota = quota })
	root := e.dir(userA)
	writeFile(t, filepath.Join(root, "results", "old.csv"), strings.Repeat("r", 6000))
	c := e.login(userA, passA)
	stor := func(name string, size int) error {
		return c.Stor(name, bytes.NewReader(bytes.Repeat([]byte("x"), size)))
	}
	is552 := func(err error) bool { return replyCode(err) == 552 }
	if err := stor("a.txt", 5000); !is552(err) {
		t.Fatalf("upload over quota: %v", err)
	}
	if got := files(t, root); len(got) != 0 {
		t.Fatalf("partial upload left: %v", got)
	}
	if err := stor("a.txt", 3000); err != nil {
		t.Fatalf("upload within quota: %v", err)
	}
	if err := stor("b.txt", 3000); !is552(err) {
		t.Fatalf("second upload over quota: %v", err)
	}
	if err := stor("a.txt", 4000); !is552(err) {
		t.Fatalf("replacing upload over quota: %v", err)
	}
	if err := c.Delete("/results/old.csv"); err != nil {
		t.Fatal(err)
	}
	if err := stor("b.txt", 3000); err != nil {
		t.Fatalf("upload after freeing space: %v", err)
	}
	got := files(t, root)
	slices.Sort(got)
	if !slices.Equal(got, []string{"a.txt", "b.txt"}) {
		t.Fatalf("inbox %v", got)
	}
	if err := c.NoOp(); err != nil {
		t.Fatal(err)
	}
}

// An upload or a rename that puts a file under an inbox name holds
// LockInboxNames while it does (a rename for both its names): the gateway
// moves processed files under the same lock, and must never move a newer
// upload for the file it read.
func TestInboxNameLockedWhileReplaced(t *testing.T) {
	var mu sync.Mutex
	var held []string
	locked := map[string]bool{}
	e := startEnv(t, func(c *Config) {
		c.LockInboxNames = func(login string, names ...string) func() {
			mu.Lock()
			defer mu.Unlock()
			for _, name := range names {
				locked[name] = true
			}
			held = append(held, login+"/"+strings.Join(names, "+"))
			return func() {
				mu.Lock()
				defer mu.Unlock()
				for _, name := range names {
					locked[name] = false
				}
			}
		}
		c.OnUpload = func(login, name string) {
			mu.Lock()
			defer mu.Unlock()
			if locked[name] {
				t.Errorf("%s still locked when the upload is announced", name)
			}
		}
		c.InboxBusy = func(login, name string) bool {
			mu.Lock()
			defer mu.Unlock()
			if !locked[name] {
				t.Errorf("InboxBusy(%s) asked without its lock", name)
			}
			return name == "busy.txt"
		}
	})
	c := e.login(userA, passA)
	if err := c.Stor("sms.txt", strings.NewReader("one")); err != nil {
		t.Fatal(err)
	}
	if err := c.Stor("sms.txt", strings.NewReader("two")); err != nil {
		t.Fatal(err)
	}
	if err := c.Rename("sms.txt", "other.txt"); err != nil {
		t.Fatal(err)
	}
	// A file the gateway is processing is neither renamed nor deleted.
	if err := c.Stor("busy.txt", strings.NewReader("three")); err != nil {
		t.Fatal(err)
	}
	for op, try := range map[string]func() error{
		"rename": func() error { return c.Rename("busy.txt", "x.txt") },
		"delete": func() error { return c.Delete("busy.txt") },
	} {
		if err := try(); err == nil || !strings.Contains(err.Error(), "being processed") {
			t.Errorf("%s of a busy file: %v, want 550 being processed", op, err)
		}
	}
	if _, err := os.Stat(filepath.Join(e.dir(userA), "busy.txt")); err != nil {
		t.Errorf("busy file gone: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	held = held[:3]
	want := []string{userA + "/sms.txt", userA + "/sms.txt", userA + "/sms.txt+other.txt"}
	if !slices.Equal(held, want) {
		t.Errorf("locks taken %v, want %v", held, want)
	}
}

// Renames and deletes racing on one inbox name keep the quota's count of
// used bytes true: what they free is measured under the name's lock.
// Before, a rename measured the file it replaced before the lock, a DELE
// of that file got in between, and the same bytes were freed twice: the
// account could then hold more than its quota.
func TestQuotaCountUnderRacingRenameAndDelete(t *testing.T) {
	var names sync.Mutex // the gateway's striped name locks, as one
	e := startEnv(t, func(c *Config) {
		c.Accounts[0].Quota = 1 << 30
		c.MaxConnectionsPerIP, c.MaxConnections = 20, 20
		c.LockInboxNames = func(string, ...string) func() { names.Lock(); return names.Unlock }
	})
	body := strings.Repeat("x", 1000)
	// The account is measured once, at its first upload, before the race
	// (the fake clock never makes that measure stale).
	first := e.login(userA, passA)
	if err := first.Stor("first.txt", strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 3 {
		c := e.login(userA, passA)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = c.Delete("t.txt")
			}
		}()
	}
	var renamers sync.WaitGroup
	for w := range 3 {
		c := e.login(userA, passA)
		renamers.Add(1)
		go func() {
			defer renamers.Done()
			src := fmt.Sprintf("src%d.txt", w)
			for range 100 {
				if err := c.Stor(src, strings.NewReader(body)); err != nil {
					t.Errorf("STOR: %v", err)
					return
				}
				_ = c.Rename(src, "t.txt")
			}
		}()
	}
	renamers.Wait()
	close(stop)
	wg.Wait()
	acct := e.srv.accounts[userA]
	acct.mu.Lock()
	counted := acct.used
	acct.mu.Unlock()
	var onDisk int64
	_ = filepath.WalkDir(e.dir(userA), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && !isTempName(d.Name()) {
			if fi, err := d.Info(); err == nil {
				onDisk += fi.Size()
			}
		}
		return nil
	})
	if counted != onDisk {
		t.Fatalf("quota counts %d bytes used, the account holds %d", counted, onDisk)
	}
}
