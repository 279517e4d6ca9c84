//! Checks of `deferred_delete`.

use std::cell::RefCell;
use std::rc::Rc;

use super::week2::deferred_delete::DeferredDeleter;

/// Records its name in `log` when dropped.
struct Noisy {
    name: &'static str,
    log: Rc<RefCell<Vec<&'static str>>>,
}

impl Drop for Noisy {
    fn drop(&mut self) {
        self.log.borrow_mut().push(self.name);
    }
}

/// A connection that defers its filter while being dropped.
struct Connection {
    deleter: Rc<DeferredDeleter>,
    filter: Option<Noisy>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(f) = self.filter.take() {
            self.deleter.defer(Box::new(f));
        }
    }
}

checks! {
    fn objects_live_until_clear_then_drop_in_order() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let d = DeferredDeleter::new();
        for name in ["a", "b", "c"] {
            d.defer(Box::new(Noisy { name, log: Rc::clone(&log) }));
        }
        assert_eq!(d.len(), 3);
        assert!(log.borrow().is_empty(), "nothing dropped before clear");
        assert_eq!(d.clear(), 3);
        assert_eq!(*log.borrow(), vec!["a", "b", "c"]);
        assert!(d.is_empty());
        assert_eq!(d.clear(), 0);
    }

    fn a_drop_that_defers_waits_for_the_next_clear() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let d = Rc::new(DeferredDeleter::new());
        let filter = Noisy { name: "filter", log: Rc::clone(&log) };
        d.defer(Box::new(Connection { deleter: Rc::clone(&d), filter: Some(filter) }));
        assert_eq!(d.clear(), 1, "the connection");
        assert!(log.borrow().is_empty(), "its filter waits for the next iteration");
        assert_eq!(d.len(), 1);
        assert_eq!(d.clear(), 1);
        assert_eq!(*log.borrow(), vec!["filter"]);
    }

    fn clear_empties_the_list() {
        let d = DeferredDeleter::new();
        d.defer(Box::new(1u32));
        d.defer(Box::new(String::from("x")));
        assert!(!d.is_empty());
        assert_eq!(d.clear(), 2);
        assert_eq!(d.len(), 0);
    }
}
