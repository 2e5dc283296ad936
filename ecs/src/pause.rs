//! The pause container of an awsvpc task, as the ECS agent's: it holds the task's network
//! namespace (and so its address) for the task's whole life, whichever of the task's
//! containers exit; the task's containers join it. The agent ships its pause image as a
//! tarball and loads it; hostalb pulls nothing either, so it makes its own image here: a
//! root filesystem of one static program, `/pause`, that blocks in the kernel forever,
//! `docker import`ed once as [`IMAGE`]. The program is a few machine instructions in a
//! minimal ELF file, for x86-64 and AArch64; on another architecture there is no pause
//! container and the task's first container holds the namespace.

/// The image's repository and tag.
pub const REPOSITORY: &str = "hostalb-ecs-pause";
pub const TAG: &str = "1";
/// `REPOSITORY:TAG`.
pub const IMAGE: &str = "hostalb-ecs-pause:1";
/// The program's path in the image.
pub const PROGRAM: &str = "/pause";
/// The container name the agent gives its pause container (its Docker name has it with
/// the `~` removed).
pub const CONTAINER_NAME: &str = "~internal~ecs~pause";

/// Where the program is loaded (the usual base of a static executable).
const BASE: u64 = 0x40_0000;
/// ELF header and one program header: the code follows them.
const HEADERS: usize = 64 + 56;
/// The program's file mode in the image.
const MODE: &str = "0000755";

/// The machine code of "block forever" for this architecture, and the ELF machine number.
fn code() -> Option<(Vec<u8>, u16)> {
    match std::env::consts::ARCH {
        // loop: mov eax, 34 (pause); syscall; jmp loop
        "x86_64" => Some((vec![0xb8, 0x22, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7], 0x3e)),
        // loop: x0..x3 = 0; x8 = 73 (ppoll); svc #0; b loop
        "aarch64" => {
            let words: [u32; 7] = [
                0xd280_0000,
                0xd280_0001,
                0xd280_0002,
                0xd280_0003,
                0xd280_0928,
                0xd400_0001,
                0x17ff_fffa,
            ];
            Some((words.iter().flat_map(|w| w.to_le_bytes()).collect(), 0xb7))
        }
        _ => None,
    }
}

/// The `/pause` executable: a static ELF64 of one loadable segment.
pub fn program() -> Option<Vec<u8>> {
    let (code, machine) = code()?;
    let size = (HEADERS + code.len()) as u64;
    let mut f = Vec::with_capacity(HEADERS + code.len());
    f.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    f.extend_from_slice(&2u16.to_le_bytes()); // executable
    f.extend_from_slice(&machine.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes()); // version
    f.extend_from_slice(&(BASE + HEADERS as u64).to_le_bytes()); // entry
    f.extend_from_slice(&64u64.to_le_bytes()); // program headers' offset
    f.extend_from_slice(&0u64.to_le_bytes()); // no section headers
    f.extend_from_slice(&0u32.to_le_bytes()); // flags
    f.extend_from_slice(&64u16.to_le_bytes()); // ELF header size
    f.extend_from_slice(&56u16.to_le_bytes()); // program header size
    f.extend_from_slice(&1u16.to_le_bytes()); // one program header
    f.extend_from_slice(&[0; 6]); // no section headers
    f.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    f.extend_from_slice(&5u32.to_le_bytes()); // read + execute
    f.extend_from_slice(&0u64.to_le_bytes()); // from the file's start
    f.extend_from_slice(&BASE.to_le_bytes()); // virtual address
    f.extend_from_slice(&BASE.to_le_bytes()); // physical address
    f.extend_from_slice(&size.to_le_bytes()); // file size
    f.extend_from_slice(&size.to_le_bytes()); // memory size
    f.extend_from_slice(&0x1000u64.to_le_bytes()); // alignment
    f.extend_from_slice(&code);
    Some(f)
}

/// A tar archive (ustar) of one executable file at `path` (without its leading `/`).
fn tar(path: &str, data: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    let mut put = |at: usize, bytes: &[u8]| header[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, path.as_bytes());
    put(100, format!("{MODE}\0").as_bytes());
    put(108, b"0000000\0");
    put(116, b"0000000\0");
    put(124, format!("{:011o}\0", data.len()).as_bytes());
    put(136, b"00000000000\0");
    put(148, b"        ");
    put(156, b"0");
    put(257, b"ustar\0");
    put(263, b"00");
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut out = header.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// The image's root filesystem as a tar archive; `None` on an architecture without a
/// program here.
pub fn root_filesystem() -> Option<Vec<u8>> {
    let program = program()?;
    Some(tar(PROGRAM.trim_start_matches('/'), &program))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_holds_one_executable_elf_file() {
        let Some(fs) = root_filesystem() else {
            return;
        };
        assert_eq!(fs.len() % 512, 0);
        assert_eq!(&fs[0..5], b"pause");
        assert_eq!(&fs[257..262], b"ustar");
        let size = usize::from_str_radix(std::str::from_utf8(&fs[124..135]).unwrap(), 8).unwrap();
        let program = program().unwrap();
        assert_eq!(size, program.len());
        assert_eq!(&fs[512..512 + size], program.as_slice());
        assert_eq!(&program[0..4], b"\x7fELF");
        // The checksum counts the field as spaces.
        let mut header = fs[0..512].to_vec();
        let stored = u32::from_str_radix(std::str::from_utf8(&header[148..154]).unwrap(), 8).unwrap();
        header[148..156].copy_from_slice(b"        ");
        assert_eq!(stored, header.iter().map(|b| u32::from(*b)).sum::<u32>());
    }

    #[test]
    fn the_program_blocks_forever_when_run_here() {
        // Run as a plain process on this host: it must still be running after a while
        // (it blocks in the kernel), and die on SIGKILL.
        let Some(program) = program() else {
            return;
        };
        let dir = std::env::temp_dir().join(format!("hostalb-pause-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pause");
        std::fs::write(&path, program).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut child = std::process::Command::new(&path).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(child.try_wait().unwrap().is_none(), "it is still running");
        child.kill().unwrap();
        child.wait().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
