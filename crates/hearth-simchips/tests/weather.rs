//! The simulated weather: deterministic per seed, smooth, bounded in its rate of change, yet
//! visibly drifting within minutes.

use hearth_simchips::{weather_station, Conditions, WeatherModel};

fn series(seed: u64, minutes: u64) -> Vec<Conditions> {
    let mut w = WeatherModel::new(seed);
    (0..minutes).map(|m| w.at(m * 60_000)).collect()
}

#[test]
fn same_seed_same_weather_other_seed_other_weather() {
    assert_eq!(series(7, 600), series(7, 600));
    assert_ne!(series(7, 600), series(8, 600));
    assert_eq!(WeatherModel::new(7).seed(), 7);
}

#[test]
fn weather_depends_on_time_not_on_how_often_it_is_asked() {
    let mut stepped = WeatherModel::new(5);
    let mut last = None;
    for s in 0..=7_200u64 {
        last = Some(stepped.at(s * 1_000));
    }
    let mut jumped = WeatherModel::new(5);
    assert_eq!(Some(jumped.at(7_200_000)), last);
    // Going back replays the same weather.
    let early = jumped.at(1_234_567);
    assert_eq!(WeatherModel::new(5).at(1_234_567), early);
}

#[test]
fn never_jumps() {
    for seed in 0..20 {
        let mut w = WeatherModel::new(seed);
        let mut previous = w.at(0);
        // Two simulated days, one second apart.
        for s in 1..=172_800u64 {
            let now = w.at(s * 1_000);
            let dt = (now.temperature_c - previous.temperature_c).abs();
            let dh = (now.humidity_rh - previous.humidity_rh).abs();
            let dp = (now.pressure_pa - previous.pressure_pa).abs();
            assert!(dt <= 0.01, "seed {seed} at {s} s: {dt} °C in 1 s");
            assert!(dh <= 0.05, "seed {seed} at {s} s: {dh} %RH in 1 s");
            assert!(dp <= 1.0, "seed {seed} at {s} s: {dp} Pa in 1 s");
            previous = now;
        }
    }
}

#[test]
fn drift_is_visible_within_minutes() {
    // Averaged over seeds and windows, five minutes move temperature by tenths of a degree and
    // pressure by tens of pascal: enough to change a value published with one decimal.
    let (mut dt, mut dp, mut n) = (0.0f32, 0.0f32, 0.0f32);
    for seed in 0..20 {
        let mut w = WeatherModel::new(seed);
        for window in 0..24u64 {
            let start = window * 3_600_000;
            let a = w.at(start);
            let b = w.at(start + 300_000);
            dt += (b.temperature_c - a.temperature_c).abs();
            dp += (b.pressure_pa - a.pressure_pa).abs();
            n += 1.0;
        }
    }
    let (dt, dp) = (dt / n, dp / n);
    assert!((0.05..1.0).contains(&dt), "mean |ΔT| over 5 min: {dt}");
    assert!((5.0..100.0).contains(&dp), "mean |ΔP| over 5 min: {dp}");
}

#[test]
fn humidity_falls_as_temperature_rises() {
    let c = series(9, 3 * 24 * 60);
    let n = c.len() as f32;
    let mean_t = c.iter().map(|c| c.temperature_c).sum::<f32>() / n;
    let mean_h = c.iter().map(|c| c.humidity_rh).sum::<f32>() / n;
    let cov: f32 = c
        .iter()
        .map(|c| (c.temperature_c - mean_t) * (c.humidity_rh - mean_h))
        .sum();
    assert!(cov < 0.0, "covariance {cov}");
}

#[test]
fn the_station_handle_moves_what_the_chips_sense() {
    let (bus, mut weather) = weather_station(21);
    assert_eq!(bus.scan(), vec![0x40, 0x76]);
    let at_zero = weather.conditions();
    assert_eq!(at_zero, WeatherModel::new(21).at(0));
    let later = weather.advance_to(3_600_000);
    assert_eq!(weather.conditions(), later);
    assert_ne!(later, at_zero);
    let fixed = Conditions::default();
    weather.set_conditions(fixed);
    assert_eq!(weather.ambient().get(), fixed);
}
