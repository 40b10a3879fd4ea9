package atomicfile

// syncDir: Windows renames (MoveFileEx) are journaled by NTFS; folders cannot be synced.
func syncDir(string) {}
