// RuntimeWatchdog: a liveness bound for tests that call Runtime::run(). run() returns only when
// something calls stop(); if what the test waits for never happens, the watchdog stops the
// runtime after a generous bound and sets `fired`, so the test fails on it instead of hanging
// the suite. A hang guard, never a timing check.
// Threading: construct on the test thread before run(); the timer runs on the control context.
#pragma once

#include <chrono>

#include <boost/asio/steady_timer.hpp>

#include "common/runtime.h"

struct RuntimeWatchdog {
  boost::asio::steady_timer timer;
  bool fired = false;
  explicit RuntimeWatchdog(common::Runtime& rt) : timer(rt.control(), std::chrono::seconds(30)) {
    timer.async_wait([this, &rt](boost::system::error_code ec) {
      if (ec) return;
      fired = true;
      rt.stop();
    });
  }
  ~RuntimeWatchdog() { timer.cancel(); }
};
