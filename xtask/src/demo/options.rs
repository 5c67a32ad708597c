//! `cargo xtask demo`'s options: the board, the app, an ELF to run as it is, build only.

use std::path::{Path, PathBuf};

use crate::boards::{self, Board, AN521, RP2040, RP2350};

/// Which firmware: the demo (every board) or the embassy firmware (RP2040).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum App {
    Demo,
    Embassy,
}

impl App {
    /// The app an ELF holds, from its name (`embassy` is the embassy firmware's binary).
    fn of_elf(path: &Path) -> App {
        if path.file_stem().is_some_and(|stem| stem == "embassy") {
            App::Embassy
        } else {
            App::Demo
        }
    }
}

/// Parsed `cargo xtask demo` options.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    pub board: &'static Board,
    pub build_only: bool,
    /// An ELF to run as it is (no build).
    pub elf: Option<PathBuf>,
    pub app: App,
}

/// Parses the arguments after `demo`.
pub fn parse(args: &[String]) -> std::result::Result<Options, String> {
    let choices: &[&'static Board] = &[&AN521, &RP2040, &RP2350];
    let mut options = Options {
        board: &RP2040,
        build_only: false,
        elf: None,
        app: App::Demo,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let board_name = match arg.as_str() {
            "--build-only" => {
                options.build_only = true;
                continue;
            }
            "--elf" => {
                let path = it.next().ok_or("`--elf` needs the path of an ELF")?;
                options.elf = Some(PathBuf::from(path));
                continue;
            }
            "--app" => {
                options.app = match it.next().map(String::as_str) {
                    Some("demo") => App::Demo,
                    Some("embassy") => App::Embassy,
                    other => {
                        return Err(format!(
                            "`--app` takes `demo` or `embassy`, not {}",
                            other.map_or("nothing".to_owned(), |o| format!("`{o}`"))
                        ))
                    }
                };
                continue;
            }
            "--board" => it.next().ok_or("`--board` needs a board name")?.as_str(),
            other => match other.strip_prefix("--board=") {
                Some(name) => name,
                None => return Err(format!("unexpected argument `{other}`")),
            },
        };
        options.board = Board::find(board_name, choices).ok_or_else(|| {
            format!(
                "unknown board `{board_name}` (the demo runs on {})",
                boards::names(choices)
            )
        })?;
    }
    if options.build_only && options.elf.is_some() {
        return Err("`--elf` runs an ELF that is built already: not with `--build-only`".into());
    }
    if let Some(elf) = &options.elf {
        options.app = App::of_elf(elf);
    }
    if options.app == App::Embassy && options.board != &RP2040 {
        return Err("the embassy firmware runs on the RP2040 only".into());
    }
    Ok(options)
}
