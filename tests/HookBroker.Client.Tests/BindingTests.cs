using HookBroker.Client;

namespace HookBroker.Client.Tests;

public sealed record UserCreated(string Username, string Email);

public sealed class SignupForm
{
    public string? UserName { get; set; }

    public int Age { get; set; }
}

public sealed class Address
{
    public string? City { get; set; }
}

public sealed class ClassHooks
{
    public static List<string> Seen { get; } = [];

    private readonly string prefix = "class:";

    [HookEvent("user_created")]
    public void OnUserCreated(string username) => Seen.Add(prefix + username);
}

public sealed class BindingTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact(Timeout = 10_000)]
    public async Task Named_parameters_bind_exactly_and_the_token_is_injected()
    {
        string? got = null;
        var hooks = new Hooks().Event("user_created", (string username, string email, CancellationToken ct) =>
        {
            got = $"{username}|{email}|{ct.CanBeCanceled}";
            return Task.CompletedTask;
        });

        await hooks.ExecuteAsync("user_created", new { username = "ali", email = "ali@example.com" }, Token);

        Assert.Equal("ali|ali@example.com|True", got);
    }

    [Fact(Timeout = 10_000)]
    public async Task Names_match_ignoring_case_and_snake_or_camel_case()
    {
        string? got = null;
        var hooks = new Hooks().Event("x", (string userName, string emailAddress, int retryCount) => got = $"{userName}|{emailAddress}|{retryCount}");

        await hooks.ExecuteAsync("x", new Dictionary<string, object?> { ["user_name"] = "ali", ["EMAILADDRESS"] = "a@b", ["retry-count"] = 3 }, Token);

        Assert.Equal("ali|a@b|3", got);
    }

    [Fact(Timeout = 10_000)]
    public async Task An_exact_name_wins_over_an_insensitive_one()
    {
        string? got = null;
        var hooks = new Hooks().Event("x", (string userName) => got = userName);

        await hooks.ExecuteAsync("x", new Dictionary<string, object?> { ["user_name"] = "snake", ["userName"] = "exact" }, Token);

        Assert.Equal("exact", got);
    }

    [Fact(Timeout = 10_000)]
    public async Task Values_convert_to_the_parameter_types()
    {
        object?[]? got = null;
        var hooks = new Hooks().Event("x", (int count, long big, ulong huge, double ratio, bool flag, Guid id, DateTimeOffset at, string[] tags, Address address, DayOfWeek day, decimal price, string text) =>
            got = [count, big, huge, ratio, flag, id, at, tags, address.City, day, price, text]);
        var id = Guid.NewGuid();
        var at = new DateTimeOffset(2025, 1, 2, 3, 4, 5, TimeSpan.Zero);

        await hooks.ExecuteAsync("x", new
        {
            count = "42", // numeric strings bind to integers
            big = 9_007_199_254_740_993L, // beyond 2^53: travels as a string, binds back exactly
            huge = ulong.MaxValue,
            ratio = 0.25,
            flag = true,
            id,
            at,
            tags = new[] { "a", "b" },
            address = new { city = "Tehran" },
            day = 3,
            price = 12.5m,
            text = 7, // a number binds to a string parameter as its text
        }, Token);

        Assert.NotNull(got);
        Assert.Equal(42, got[0]);
        Assert.Equal(9_007_199_254_740_993L, got[1]);
        Assert.Equal(ulong.MaxValue, got[2]);
        Assert.Equal(0.25, got[3]);
        Assert.Equal(true, got[4]);
        Assert.Equal(id, got[5]);
        Assert.Equal(at, got[6]);
        Assert.Equal(["a", "b"], (string[])got[7]!);
        Assert.Equal("Tehran", got[8]);
        Assert.Equal(DayOfWeek.Wednesday, got[9]);
        Assert.Equal(12.5m, got[10]);
        Assert.Equal("7", got[11]);
    }

    [Fact(Timeout = 10_000)]
    public async Task Optional_parameters_take_their_defaults_and_nullable_ones_take_null()
    {
        string? got = null;
        var hooks = new Hooks().Event("x", Handler);

        await hooks.ExecuteAsync("x", new { name = "a", nickname = (string?)null }, Token);

        Assert.Equal("a|5|hi||", got);

        void Handler(string name, string? nickname, int retries = 5, string greeting = "hi", int? limit = null) =>
            got = $"{name}|{retries}|{greeting}|{nickname}|{limit}";
    }

    [Fact(Timeout = 10_000)]
    public async Task A_missing_required_argument_names_the_parameter()
    {
        var hooks = new Hooks().Event("user_created", (string username, string email) => { });

        var error = await Assert.ThrowsAsync<HookBindingException>(async () => await hooks.ExecuteAsync("user_created", new { username = "ali" }, Token));

        Assert.Equal("email", error.ParameterName);
        Assert.Contains("missing required argument 'email'", error.Message, StringComparison.Ordinal);
        Assert.Contains("user_created", error.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 10_000)]
    public async Task An_unconvertible_argument_names_the_parameter()
    {
        var hooks = new Hooks().Event("x", (int count) => { });

        var error = await Assert.ThrowsAsync<HookBindingException>(async () => await hooks.ExecuteAsync("x", new { count = "many" }, Token));

        Assert.Equal("count", error.ParameterName);
        Assert.Contains("cannot be converted to Int32", error.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 10_000)]
    public async Task Null_for_a_non_nullable_parameter_is_a_binding_error()
    {
        var hooks = new Hooks().Event("x", (string name) => { });

        var error = await Assert.ThrowsAsync<HookBindingException>(async () => await hooks.ExecuteAsync("x", new { name = (string?)null }, Token));

        Assert.Equal("name", error.ParameterName);
    }

    [Fact(Timeout = 10_000)]
    public async Task Extra_arguments_are_ignored_and_no_args_call_a_parameterless_hook()
    {
        var calls = 0;
        var hooks = new Hooks()
            .Event("x", (string a) => calls++)
            .Event("y", () => calls++);

        await hooks.ExecuteAsync("x", new { a = "1", b = 2, c = new { d = 3 } }, Token);
        await hooks.ExecuteAsync("y", null, Token);

        Assert.Equal(2, calls);
    }

    [Fact(Timeout = 10_000)]
    public async Task A_single_record_parameter_takes_the_whole_args()
    {
        UserCreated? got = null;
        var hooks = new Hooks().Event("user_created", async (UserCreated e, CancellationToken ct) =>
        {
            await Task.Yield();
            got = e;
        });

        await hooks.ExecuteAsync("user_created", new { username = "ali", email = "ali@example.com", extra = 1 }, Token);

        Assert.Equal(new UserCreated("ali", "ali@example.com"), got);
    }

    [Fact(Timeout = 10_000)]
    public async Task A_whole_args_poco_binds_snake_case_keys()
    {
        SignupForm? got = null;
        var hooks = new Hooks().Event("x", (SignupForm form) => got = form);

        await hooks.ExecuteAsync("x", new Dictionary<string, object?> { ["user_name"] = "ali", ["age"] = "30" }, Token);

        Assert.Equal("ali", got?.UserName);
        Assert.Equal(30, got?.Age);
    }

    [Fact(Timeout = 10_000)]
    public async Task A_whole_args_record_missing_a_property_is_a_binding_error()
    {
        var hooks = new Hooks().Event("user_created", (UserCreated e) => { });

        var error = await Assert.ThrowsAsync<HookBindingException>(async () => await hooks.ExecuteAsync("user_created", new { username = "ali" }, Token));

        Assert.Equal("e", error.ParameterName);
        Assert.Contains("email", error.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact(Timeout = 10_000)]
    public async Task A_complex_parameter_binds_by_name_when_the_key_exists()
    {
        string? got = null;
        var hooks = new Hooks().Event("x", (Address address) => got = address.City);

        await hooks.ExecuteAsync("x", new { address = new { city = "Shiraz" } }, Token);

        Assert.Equal("Shiraz", got);
    }

    [Fact(Timeout = 10_000)]
    public async Task A_dictionary_parameter_takes_the_whole_args()
    {
        IDictionary<string, object>? got = null;
        var hooks = new Hooks().Event("x", (Dictionary<string, object> all) => got = all);

        await hooks.ExecuteAsync("x", new { a = 1, b = "two" }, Token);

        Assert.Equal(["a", "b"], got!.Keys.Order());
    }

    [Fact(Timeout = 10_000)]
    public async Task The_context_parameter_carries_the_label()
    {
        HookContext? got = null;
        var hooks = new Hooks().Event("user.*", (HookContext context) => got = context);

        await hooks.ExecuteAsync("user.deleted", null, Token);

        Assert.Equal("user.deleted", got?.Label);
        Assert.Equal(1, got?.Attempt);
    }

    [Fact(Timeout = 10_000)]
    public async Task Return_shapes_are_awaited()
    {
        var log = new List<string>();
        var hooks = new Hooks()
            .Event("x", async () => { await Task.Yield(); log.Add("task"); })
            .Event("x", async ValueTask () => { await Task.Yield(); log.Add("valuetask"); })
            .Event("x", async ValueTask<int> () => { await Task.Yield(); log.Add("valuetask<int>"); return 1; })
            .Event("x", async Task<string> () => { await Task.Yield(); log.Add("task<string>"); return ""; })
            .Event("x", int () => { log.Add("sync"); return 1; });

        await hooks.ExecuteAsync("x", null, Token);

        Assert.Equal(["task", "valuetask", "valuetask<int>", "task<string>", "sync"], log);
    }

    [Fact(Timeout = 10_000)]
    public async Task Hooks_run_in_registration_order_and_the_first_error_stops_the_loop()
    {
        var log = new List<string>();
        var hooks = new Hooks()
            .Event("x", () => log.Add("1"))
            .Event("x", void () => throw new InvalidOperationException("boom"))
            .Event("x", () => log.Add("3"));

        var error = await Assert.ThrowsAsync<InvalidOperationException>(async () => await hooks.ExecuteAsync("x", null, Token));

        Assert.Equal("boom", error.Message);
        Assert.Equal(["1"], log);
    }

    [Fact(Timeout = 10_000)]
    public async Task Included_collections_keep_registration_order_and_class_hooks_bind()
    {
        var log = new List<string>();
        ClassHooks.Seen.Clear();
        var project = new Hooks().Event("user_created", (string username) => log.Add("project:" + username));
        var app = new Hooks()
            .Event("user_created", (string username) => log.Add("app:" + username))
            .Add<ClassHooks>()
            .Include(project);

        await app.ExecuteAsync("user_created", new { username = "ali" }, Token);

        Assert.Equal(["app:ali", "project:ali"], log);
        Assert.Equal(["class:ali"], ClassHooks.Seen);
        Assert.Equal(["user_created"], app.Labels);
        Assert.Equal(3, app.Count);
    }

    [Fact(Timeout = 10_000)]
    public async Task An_instance_registers_its_attributed_methods()
    {
        var instance = new CountingHooks();
        var hooks = new Hooks().Add(instance);

        await hooks.ExecuteAsync("a", new { n = 2 }, Token);
        await hooks.ExecuteAsync("b", new { n = 3 }, Token);

        Assert.Equal(5, instance.Total);
        Assert.Equal(["a", "b"], hooks.Labels);
    }

    [Fact(Timeout = 10_000)]
    public void Bad_labels_are_refused_at_registration()
    {
        Assert.Throws<ArgumentException>(() => new Hooks().Event("has space", () => { }));
        Assert.Throws<ArgumentException>(() => new Hooks().Add(new object()));
        var ok = new Hooks().Event("billing.>", () => { }).Event("user.*", () => { });
        Assert.Equal(2, ok.Count);
    }

    [Fact(Timeout = 10_000)]
    public async Task Patterns_match_segments()
    {
        var log = new List<string>();
        var hooks = new Hooks()
            .Event("user.*", (HookContext c) => log.Add("star:" + c.Label))
            .Event("billing.>", (HookContext c) => log.Add("tail:" + c.Label));

        foreach (var label in new[] { "user.created", "user.created.now", "billing", "billing.invoice.paid" })
        {
            await hooks.ExecuteAsync(label, null, Token);
        }

        Assert.Equal(["star:user.created", "tail:billing.invoice.paid"], log);
    }

    private sealed class CountingHooks
    {
        public int Total { get; private set; }

        [HookEvent("a")]
        [HookEvent("b")]
        public Task AddAsync(int n, CancellationToken cancellationToken)
        {
            Total += n;
            return Task.CompletedTask;
        }
    }
}
