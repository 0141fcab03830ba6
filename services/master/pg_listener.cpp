#include "master/pg_listener.hpp"

#include <cstring>
#include <vector>

#include <sys/epoll.h>

#include "common/log.hpp"
#include "master/pg_connection.hpp"

namespace by::master {

namespace {

std::string connection_error(PGconn* c) {
    std::string e = c ? PQerrorMessage(c) : "out of memory";
    while (!e.empty() && (e.back() == '\n' || e.back() == ' ')) {
        e.pop_back();
    }
    return e.empty() ? "the connection failed" : e;
}

}  // namespace

PgListener::PgListener(sd_event* event, std::string uri, std::string password, std::vector<std::string> channels,
                       Events events)
    : event_(event),
      uri_(std::move(uri)),
      password_(std::move(password)),
      channels_(std::move(channels)),
      events_(std::move(events)) {}

PgListener::~PgListener() {
    io_.reset();
    if (conn_) {
        PQfinish(conn_);
    }
}

void PgListener::connect() {
    conn_ = pg_connect_start(uri_, password_);
    if (!conn_ || PQstatus(conn_) == CONNECTION_BAD) {
        fail(connection_error(conn_));
        return;
    }
    state_ = State::connecting;
    if (!watch(EPOLLOUT)) {
        fail("cannot watch its socket");
    }
}

bool PgListener::watch(uint32_t events) {
    const int fd = PQsocket(conn_);
    if (fd < 0) {
        return false;
    }
    if (io_ && fd == fd_) {
        return sd_event_source_set_io_events(io_.get(), events) >= 0;
    }
    io_.reset();
    sd_event_source* s = nullptr;
    if (sd_event_add_io(event_, &s, fd, events, on_io, this) < 0) {
        return false;
    }
    io_.reset(s);
    fd_ = fd;
    return true;
}

int PgListener::on_io(sd_event_source*, int, uint32_t, void* userdata) {
    auto* self = static_cast<PgListener*>(userdata);
    if (self->state_ == State::connecting) {
        self->poll_connect();
    } else {
        self->read();
    }
    return 0;
}

void PgListener::poll_connect() {
    switch (PQconnectPoll(conn_)) {
    case PGRES_POLLING_READING:
        if (!watch(EPOLLIN)) fail("cannot watch its socket");
        return;
    case PGRES_POLLING_WRITING:
        if (!watch(EPOLLOUT)) fail("cannot watch its socket");
        return;
    case PGRES_POLLING_FAILED:
        fail(connection_error(conn_));
        return;
    default:
        break;
    }
    // Connected: LISTEN, and read its answer (and what follows) as it comes.
    PQsetnonblocking(conn_, 1);
    std::string sql;
    for (const std::string& channel : channels_) {
        char* quoted = PQescapeIdentifier(conn_, channel.c_str(), channel.size());
        sql += std::string("LISTEN ") + (quoted ? quoted : "") + ";";
        PQfreemem(quoted);
    }
    answers_ = 0;
    if (!PQsendQuery(conn_, sql.c_str()) || PQflush(conn_) != 0) {
        fail(connection_error(conn_));
        return;
    }
    state_ = State::asking;
    if (!watch(EPOLLIN)) {
        fail("cannot watch its socket");
    }
}

void PgListener::read() {
    if (!PQconsumeInput(conn_)) {
        fail(connection_error(conn_));
        return;
    }
    while (!PQisBusy(conn_)) {
        PGresult* r = PQgetResult(conn_);
        if (!r) {
            break;
        }
        const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        const std::string why = ok ? "" : PQresultErrorMessage(r);
        PQclear(r);
        if (!ok) {
            fail("LISTEN failed: " + why);
            return;
        }
        if (state_ == State::asking && ++answers_ == channels_.size()) {
            state_ = State::listening;
            if (failing_) {
                log::notice("listening again for the other masters' builds");
                failing_ = false;
            }
            if (events_.resync) {
                events_.resync();
            }
        }
    }
    while (PGnotify* n = PQnotifies(conn_)) {
        const std::string channel = n->relname ? n->relname : "";
        const std::string payload = n->extra ? n->extra : "";
        PQfreemem(n);
        if (events_.heard) {
            events_.heard(channel, payload);
        }
    }
    if (PQstatus(conn_) == CONNECTION_BAD) {
        fail(connection_error(conn_));
    }
}

void PgListener::fail(const std::string& why) {
    if (!failing_) {
        log::warning("cannot listen for the other masters' builds ({}); trying again every second, and polling the "
                     "queue meanwhile",
                     why);
        failing_ = true;
    }
    io_.reset();
    fd_ = -1;
    if (conn_) {
        PQfinish(conn_);
        conn_ = nullptr;
    }
    state_ = State::idle;
    if (retry_) {
        sd_event_source_set_time_relative(retry_.get(), 1'000'000);
        sd_event_source_set_enabled(retry_.get(), SD_EVENT_ONESHOT);
    } else {
        sd_event_source* s = nullptr;
        if (sd_event_add_time_relative(event_, &s, CLOCK_MONOTONIC, 1'000'000, 0, on_retry, this) >= 0) {
            retry_.reset(s);
        }
    }
    // Builds announced while nobody listened: look at the queue each time.
    if (events_.resync) {
        events_.resync();
    }
}

int PgListener::on_retry(sd_event_source*, uint64_t, void* userdata) {
    static_cast<PgListener*>(userdata)->connect();
    return 0;
}

}  // namespace by::master
