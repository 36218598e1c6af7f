//! Hearth's menu-bar app. A thin shell: it embeds the engine, maps its status snapshots onto the
//! tray (icon, tooltip, menu) and the windows (a `status` event), and maps clicks and UI commands
//! onto engine calls. No Dock icon on macOS; one instance per user; quitting drains first.

// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod commands;
mod engine_link;
mod notify;
mod tray_view;
mod windows;

use std::time::Duration;

use hearth_engine::status::unix_ms;
use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Emitter, Manager, RunEvent, WindowEvent};
use tauri_plugin_autostart::{MacosLauncher, ManagerExt as _};
use tauri_plugin_notification::NotificationExt as _;

use crate::engine_link::EngineLink;
use crate::notify::Notifier;
use crate::tray_view::{TrayIcon as Glyph, TrayView};
use crate::windows::WindowKind;

/// Snapshots reach the tray and the windows at most this often (the newest wins).
const STATUS_MIN_GAP: Duration = Duration::from_millis(200);
/// The argument the login item passes: serve at once instead of waiting for a click.
const START_ARG: &str = "--start";

/// The menu items whose text follows the snapshot.
struct TrayMenu {
    status: MenuItem<tauri::Wry>,
    earnings: MenuItem<tauri::Wry>,
    toggle: MenuItem<tauri::Wry>,
}

fn glyph_png(glyph: Glyph) -> &'static [u8] {
    // macOS gets template images (the menu bar tints them); other trays show icons as they are,
    // so they get the coloured set.
    macro_rules! icon {
        ($name:literal) => {
            if cfg!(target_os = "macos") {
                include_bytes!(concat!("../../../icons/tray-", $name, "@2x.png")).as_slice()
            } else {
                include_bytes!(concat!("../../../icons/tray-", $name, "-color.png")).as_slice()
            }
        };
    }
    match glyph {
        Glyph::Stopped => icon!("stopped"),
        Glyph::Connecting => icon!("connecting"),
        Glyph::Ready => icon!("ready"),
        Glyph::Busy => icon!("busy"),
        Glyph::Paused => icon!("paused"),
        Glyph::Error => icon!("error"),
    }
}

fn glyph_image(glyph: Glyph) -> tauri::Result<Image<'static>> {
    Image::from_bytes(glyph_png(glyph))
}

/// Turns the OS login item on or off (the settings' `start_at_login`).
pub(crate) fn apply_start_at_login(app: &AppHandle, on: bool) {
    let launcher = app.autolaunch();
    let result = if on { launcher.enable() } else { launcher.disable() };
    if let Err(e) = result {
        tracing::warn!(error = %e, on, "could not change the login item");
    }
}

fn build_tray(app: &AppHandle, view: &TrayView) -> tauri::Result<(TrayIcon, TrayMenu)> {
    let status = MenuItem::with_id(app, "status", &view.status_line, false, None::<&str>)?;
    let earnings = MenuItem::with_id(app, "earnings", &view.earnings_line, false, None::<&str>)?;
    let toggle = MenuItem::with_id(app, "toggle", view.toggle_label, view.toggle_enabled, None::<&str>)?;
    let dashboard = MenuItem::with_id(app, "dashboard", "Open Dashboard", true, None::<&str>)?;
    let settings = MenuItem::with_id(app, "settings", "Settings…", true, Some("CmdOrCtrl+,"))?;
    let quit = MenuItem::with_id(app, "quit", "Quit Hearth", true, Some("CmdOrCtrl+Q"))?;
    let menu = Menu::with_items(
        app,
        &[
            &status,
            &earnings,
            &PredefinedMenuItem::separator(app)?,
            &toggle,
            &PredefinedMenuItem::separator(app)?,
            &dashboard,
            &settings,
            &PredefinedMenuItem::separator(app)?,
            &quit,
        ],
    )?;
    let tray = TrayIconBuilder::with_id("hearth")
        .icon(glyph_image(view.icon)?)
        .icon_as_template(cfg!(target_os = "macos"))
        .tooltip(&view.tooltip)
        .menu(&menu)
        .show_menu_on_left_click(true)
        .on_menu_event(|app, event| on_menu(app, event.id().as_ref()))
        .build(app)?;
    Ok((tray, TrayMenu { status, earnings, toggle }))
}

fn on_menu(app: &AppHandle, id: &str) {
    let engine = app.state::<EngineLink>();
    let result = match id {
        "toggle" => {
            if TrayView::of(&engine.snapshot()).toggle_label == "Stop" {
                engine.stop_serving()
            } else {
                engine.start_serving()
            }
        }
        "dashboard" => {
            let _ = windows::show(app, WindowKind::Dashboard);
            Ok(())
        }
        "settings" => {
            let _ = windows::show(app, WindowKind::Settings);
            Ok(())
        }
        "quit" => {
            quit(app.clone());
            Ok(())
        }
        _ => Ok(()),
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, id, "menu action failed");
    }
}

/// Drains in-flight jobs (bounded), then exits.
fn quit(app: AppHandle) {
    tauri::async_runtime::spawn(async move {
        if let Some(tray) = app.tray_by_id("hearth") {
            let _ = tray.set_tooltip(Some("Hearth — finishing in-flight jobs…"));
        }
        app.state::<EngineLink>().shutdown().await;
        app.exit(0);
    });
}

/// Follows the engine's snapshots: updates the tray, pushes `status` to the windows, and sends
/// the notifications that matter. A timer re-checks the notifier, since an outage grows old
/// (and a power pause held back by the notice gap comes due) without the snapshot changing.
async fn pump_status(app: AppHandle, tray: TrayIcon, menu: TrayMenu) {
    let mut rx = app.state::<EngineLink>().hub().subscribe();
    let mut notifier = Notifier::default();
    let mut last_view: Option<TrayView> = None;
    let mut recheck = tokio::time::interval(Duration::from_secs(5));
    loop {
        let changed = tokio::select! {
            r = rx.changed() => { if r.is_err() { return; } true }
            _ = recheck.tick() => false,
        };
        // Only a real change marks the snapshot seen: if the timer won a race with a change, that
        // change must still reach the tray on the next turn.
        let status = if changed { rx.borrow_and_update().clone() } else { rx.borrow().clone() };
        let now = unix_ms();
        let notices = [
            notifier.observe(status.phase, &status.reason, now),
            notifier.observe_power(status.phase, status.power.as_ref(), now),
        ];
        for notice in notices.into_iter().flatten() {
            let _ = app.notification().builder().title(notice.title()).body(notice.body()).show();
        }
        if !changed {
            continue;
        }
        let view = TrayView::of(&status);
        if last_view.as_ref() != Some(&view) {
            if last_view.as_ref().map(|v| v.icon) != Some(view.icon) {
                if let Ok(image) = glyph_image(view.icon) {
                    let _ = tray.set_icon(Some(image));
                    let _ = tray.set_icon_as_template(cfg!(target_os = "macos"));
                }
            }
            let _ = tray.set_tooltip(Some(&view.tooltip));
            let _ = menu.status.set_text(&view.status_line);
            let _ = menu.earnings.set_text(&view.earnings_line);
            let _ = menu.toggle.set_text(view.toggle_label);
            let _ = menu.toggle.set_enabled(view.toggle_enabled);
            last_view = Some(view);
        }
        let _ = app.emit("status", &status);
        tokio::time::sleep(STATUS_MIN_GAP).await;
    }
}

fn main() {
    hearth_engine::telemetry::init(hearth_engine::telemetry::LogFormat::Human);
    let serve_now = std::env::args().any(|a| a == START_ARG);

    let app = tauri::Builder::default()
        // First, so a second launch is turned away before it starts anything of its own.
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| {
            let _ = windows::show(app, WindowKind::Dashboard);
        }))
        .plugin(tauri_plugin_autostart::init(MacosLauncher::LaunchAgent, Some(vec![START_ARG])))
        .plugin(tauri_plugin_notification::init())
        .invoke_handler(tauri::generate_handler![
            commands::status,
            commands::start,
            commands::stop,
            commands::get_settings,
            commands::put_settings,
            commands::models,
            commands::onboarding,
            commands::pull_model,
            commands::pulls,
            commands::cancel_pull,
            commands::earnings,
            commands::earnings_csv,
            commands::logs,
            commands::doctor,
            commands::set_token,
            commands::open_window,
            commands::close_window,
        ])
        .setup(move |app| {
            // A menu-bar app: no Dock icon, no app menu.
            #[cfg(target_os = "macos")]
            app.set_activation_policy(tauri::ActivationPolicy::Accessory);
            let engine = tauri::async_runtime::block_on(EngineLink::start(serve_now))?;
            let view = TrayView::of(&engine.snapshot());
            app.manage(engine);
            let (tray, menu) = build_tray(app.handle(), &view)?;
            tauri::async_runtime::spawn(pump_status(app.handle().clone(), tray, menu));
            if std::env::var_os("HEARTH_SHOW_DASHBOARD").is_some() {
                windows::show(app.handle(), WindowKind::Dashboard)?;
            }
            Ok(())
        })
        .on_window_event(|window, event| {
            // Closing a window hides it; the app stays in the menu bar until Quit.
            if let WindowEvent::CloseRequested { api, .. } = event {
                api.prevent_close();
                let _ = window.hide();
            }
        })
        .build(tauri::generate_context!())
        .expect("Hearth could not start");

    app.run(|app, event| {
        if let RunEvent::ExitRequested { api, code, .. } = event {
            // Exits the app asks for itself (Quit, after the drain) carry a code; anything else —
            // e.g. the OS ending the session — drains first too.
            if code.is_none() {
                api.prevent_exit();
                quit(app.clone());
            }
        }
    });
}
