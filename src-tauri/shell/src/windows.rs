//! The two windows: the dashboard (declared in tauri.conf.json, hidden until asked for) and
//! settings (made on first use). Closing either only hides it: the app lives in the menu bar.

use serde::Deserialize;
use tauri::{AppHandle, Manager, WebviewUrl, WebviewWindowBuilder};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    Dashboard,
    Settings,
}

impl WindowKind {
    pub fn label(self) -> &'static str {
        match self {
            WindowKind::Dashboard => "dashboard",
            WindowKind::Settings => "settings",
        }
    }
}

pub fn show(app: &AppHandle, which: WindowKind) -> tauri::Result<()> {
    let window = match app.get_webview_window(which.label()) {
        Some(w) => w,
        None => match which {
            WindowKind::Dashboard => {
                WebviewWindowBuilder::new(app, "dashboard", WebviewUrl::App("index.html".into()))
                    .title("Hearth")
                    .inner_size(420.0, 680.0)
                    .skip_taskbar(true)
                    .build()?
            }
            WindowKind::Settings => {
                WebviewWindowBuilder::new(app, "settings", WebviewUrl::App("settings.html".into()))
                    .title("Hearth Settings")
                    .inner_size(460.0, 720.0)
                    .resizable(true)
                    .skip_taskbar(true)
                    .build()?
            }
        },
    };
    window.show()?;
    window.unminimize()?;
    window.set_focus()?;
    Ok(())
}

pub fn hide(app: &AppHandle, which: WindowKind) {
    if let Some(w) = app.get_webview_window(which.label()) {
        let _ = w.hide();
    }
}
