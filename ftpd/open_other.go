//go:build !unix

package ftpd

import "github.com/spf13/afero"

// diskFs is the file system accounts' folders live on.
func diskFs() afero.Fs { return afero.NewOsFs() }
