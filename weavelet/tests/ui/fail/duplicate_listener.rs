use weaver::Listener;

#[weaver::main]
struct App {
    api: Listener,
    #[weaver(listener = "api")]
    admin: Listener,
}

fn main() {}
