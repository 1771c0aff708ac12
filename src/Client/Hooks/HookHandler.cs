using System.Buffers;
using System.Linq.Expressions;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.Extensions.DependencyInjection;

namespace HookBroker.Client.Internal;

/// <summary>One hook invocation's inputs.</summary>
internal readonly record struct HookCall(JsonElement Args, HookContext Context, IServiceProvider? Services, CancellationToken CancellationToken);

/// <summary>
/// One hook with its binding compiled at registration: reflection runs once here, and each call only looks the args up
/// by name, converts them with a cached <see cref="JsonTypeInfo"/> and calls a compiled expression.
/// </summary>
internal sealed class HookHandler
{
    private readonly ParameterBinding[] bindings;
    private readonly Func<object?, object?[], ValueTask> invoke;
    private readonly Func<IServiceProvider?, (object? Target, bool Owned)> target;

    private HookHandler(string name, ParameterBinding[] bindings, Func<object?, object?[], ValueTask> invoke, Func<IServiceProvider?, (object?, bool)> target, bool usesServices)
    {
        Name = name;
        UsesServices = usesServices;
        this.bindings = bindings;
        this.invoke = invoke;
        this.target = target;
    }

    /// <summary>A readable name for logs and errors.</summary>
    public string Name { get; }

    /// <summary>Whether each call resolves or creates its instance from <see cref="HookCall.Services"/> (a class hook without instance).</summary>
    public bool UsesServices { get; }

    public static HookHandler ForDelegate(Delegate handler, JsonSerializerOptions json)
    {
        if (handler.GetInvocationList().Length != 1)
        {
            throw new ArgumentException("A hook must be a single delegate, not a multicast one.", nameof(handler));
        }

        var method = handler.Method;
        var bindings = BindParameters(method, json);
        var targetParameter = Expression.Parameter(typeof(object), "target");
        var valuesParameter = Expression.Parameter(typeof(object?[]), "values");
        var call = Expression.Invoke(Expression.Convert(targetParameter, handler.GetType()), Arguments(method, valuesParameter));
        var invoke = Compile(call, method.ReturnType, targetParameter, valuesParameter);
        return new HookHandler(DisplayName(method), bindings, invoke, _ => (handler, false), usesServices: false);
    }

    public static HookHandler ForMethod(MethodInfo method, Type type, object? instance, JsonSerializerOptions json)
    {
        var bindings = BindParameters(method, json);
        var targetParameter = Expression.Parameter(typeof(object), "target");
        var valuesParameter = Expression.Parameter(typeof(object?[]), "values");
        var call = method.IsStatic
            ? Expression.Call(method, Arguments(method, valuesParameter))
            : Expression.Call(Expression.Convert(targetParameter, method.DeclaringType!), method, Arguments(method, valuesParameter));
        var invoke = Compile(call, method.ReturnType, targetParameter, valuesParameter);
        Func<IServiceProvider?, (object?, bool)> target = method.IsStatic
            ? static _ => (null, false)
            : instance is not null
                ? _ => (instance, false)
                : services => services?.GetService(type) is { } registered
                    ? (registered, false)
                    : (services is null ? Activator.CreateInstance(type) : ActivatorUtilities.CreateInstance(services, type), true);
        return new HookHandler(DisplayName(method), bindings, invoke, target, usesServices: !method.IsStatic && instance is null);
    }

    /// <summary>Binds the args to the parameters and runs the hook.</summary>
    /// <exception cref="HookBindingException">A required argument is missing or cannot be converted.</exception>
    public async ValueTask InvokeAsync(HookCall call)
    {
        if (call.Args.ValueKind != JsonValueKind.Object)
        {
            throw new HookBindingException(string.Empty, $"Hook {Name} for '{call.Context.Label}': the args are not a JSON object.", null);
        }

        var values = new object?[bindings.Length];
        for (var i = 0; i < bindings.Length; i++)
        {
            values[i] = bindings[i].Bind(call, this);
        }

        var (instance, owned) = target(call.Services);
        try
        {
            await invoke(instance, values);
        }
        finally
        {
            if (owned)
            {
                if (instance is IAsyncDisposable asyncDisposable)
                {
                    await asyncDisposable.DisposeAsync();
                }
                else if (instance is IDisposable disposable)
                {
                    disposable.Dispose();
                }
            }
        }
    }

    private static ParameterBinding[] BindParameters(MethodInfo method, JsonSerializerOptions json)
    {
        var parameters = method.GetParameters();
        var nullability = new NullabilityInfoContext();
        var bindings = parameters.Select(p => new ParameterBinding(p, json, nullability)).ToArray();
        var bound = bindings.Where(b => b.Kind == BindingKind.Named).ToArray();
        if (bound.Length == 1)
        {
            bound[0].AllowWholeArgs();
        }

        return bindings;
    }

    private static Expression[] Arguments(MethodInfo method, ParameterExpression values) =>
        [.. method.GetParameters().Select((p, i) => (Expression)Expression.Convert(Expression.ArrayIndex(values, Expression.Constant(i)), p.ParameterType))];

    private static Func<object?, object?[], ValueTask> Compile(Expression call, Type returnType, ParameterExpression target, ParameterExpression values)
    {
        var fromTask = typeof(ValueTask).GetConstructor([typeof(Task)])!;
        Expression body;
        if (returnType == typeof(ValueTask))
        {
            body = call;
        }
        else if (typeof(Task).IsAssignableFrom(returnType))
        {
            body = Expression.New(fromTask, call);
        }
        else if (returnType.IsGenericType && returnType.GetGenericTypeDefinition() == typeof(ValueTask<>))
        {
            body = Expression.New(fromTask, Expression.Call(call, returnType.GetMethod(nameof(ValueTask<int>.AsTask))!));
        }
        else
        {
            // void, or a synchronous result the hook's caller has no use for.
            body = Expression.Block(typeof(ValueTask), call, Expression.Default(typeof(ValueTask)));
        }

        return Expression.Lambda<Func<object?, object?[], ValueTask>>(body, target, values).Compile();
    }

    private static string DisplayName(MethodInfo method)
    {
        var type = method.DeclaringType;
        var generated = type is not null && (type.IsDefined(typeof(CompilerGeneratedAttribute)) || method.Name.Contains('<', StringComparison.Ordinal));
        return generated || type is null ? "(lambda)" : $"{type.Name}.{method.Name}";
    }

    /// <summary>The parameter types bound without a serializer pass (see <c>ParameterBinding.TryReadScalar</c>).</summary>
    private enum ScalarKind
    {
        None,
        String,
        Int64,
        Int32,
        Double,
        Boolean,
    }

    private enum BindingKind
    {
        Named,
        CancellationToken,
        Context,
    }

    /// <summary>How one parameter gets its value, decided at registration.</summary>
    private sealed class ParameterBinding
    {
        private readonly string name;
        private readonly string normalized;
        private readonly Type type;
        private readonly JsonTypeInfo? typeInfo;
        private readonly JsonSerializerOptions json;
        private readonly bool hasDefault;
        private readonly object? defaultValue;
        private readonly bool rejectsNull;
        private readonly bool acceptsScalarText;
        private readonly ScalarKind scalar;
        private Dictionary<string, string>? wholeArgsNames;
        private bool wholeArgs;

        public ParameterBinding(ParameterInfo parameter, JsonSerializerOptions json, NullabilityInfoContext nullability)
        {
            type = parameter.ParameterType;
            name = parameter.Name ?? $"arg{parameter.Position}";
            normalized = Normalize(name);
            this.json = json;
            if (type.IsByRef || parameter.IsOut)
            {
                throw new ArgumentException($"Hook parameter '{name}' is by-reference; hooks take their arguments by value.", nameof(parameter));
            }

            Kind = type == typeof(CancellationToken) ? BindingKind.CancellationToken
                : type == typeof(HookContext) ? BindingKind.Context
                : BindingKind.Named;
            if (Kind != BindingKind.Named)
            {
                return;
            }

            typeInfo = json.GetTypeInfo(type);
            hasDefault = parameter.HasDefaultValue;
            if (hasDefault)
            {
                defaultValue = parameter.DefaultValue is null or DBNull && type.IsValueType ? Activator.CreateInstance(type) : parameter.DefaultValue;
            }

            rejectsNull = type.IsValueType
                ? Nullable.GetUnderlyingType(type) is null
                : nullability.Create(parameter).WriteState == NullabilityState.NotNull;
            acceptsScalarText = type == typeof(string);
            scalar = ScalarKindOf(typeInfo);
        }

        public BindingKind Kind { get; }

        /// <summary>The only bindable parameter of an object or dictionary type may take the whole args object.</summary>
        public void AllowWholeArgs()
        {
            if (typeInfo is { Kind: JsonTypeInfoKind.Object or JsonTypeInfoKind.Dictionary } && type != typeof(object))
            {
                wholeArgs = true;
                if (typeInfo.Kind == JsonTypeInfoKind.Object)
                {
                    wholeArgsNames = [];
                    foreach (var property in typeInfo.Properties)
                    {
                        wholeArgsNames.TryAdd(Normalize(property.Name), property.Name);
                    }
                }
            }
        }

        public object? Bind(HookCall call, HookHandler hook) => Kind switch
        {
            BindingKind.CancellationToken => call.CancellationToken,
            BindingKind.Context => call.Context,
            _ => BindNamed(call, hook),
        };

        private object? BindNamed(HookCall call, HookHandler hook)
        {
            if (TryFind(call.Args, out var value))
            {
                return Convert(value, call, hook);
            }

            if (wholeArgs)
            {
                return ConvertWholeArgs(call, hook);
            }

            if (hasDefault)
            {
                return defaultValue;
            }

            throw Error(call, hook, $"missing required argument '{name}' ({TypeName(type)})", null);
        }

        private object? Convert(JsonElement value, HookCall call, HookHandler hook)
        {
            if (value.ValueKind == JsonValueKind.Null)
            {
                return rejectsNull
                    ? throw Error(call, hook, $"argument '{name}' is null, but the parameter ({TypeName(type)}) does not accept null", null)
                    : null;
            }

            if (acceptsScalarText && value.ValueKind is JsonValueKind.Number or JsonValueKind.True or JsonValueKind.False)
            {
                return value.GetRawText();
            }

            if (TryReadScalar(value, out var read))
            {
                return read;
            }

            try
            {
                return JsonSerializer.Deserialize(value, typeInfo!);
            }
            catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException or NotSupportedException)
            {
                throw Error(call, hook, $"argument '{name}' cannot be converted to {TypeName(type)}: {e.Message}", e);
            }
        }

        /// <summary>
        /// The built-in converters' result for the common scalar parameters, read from the element directly (what those
        /// converters do for these tokens, without a serializer pass); false for anything else, left to the serializer.
        /// </summary>
        private bool TryReadScalar(JsonElement value, out object? read)
        {
            read = null;
            switch (scalar)
            {
                case ScalarKind.String when value.ValueKind == JsonValueKind.String:
                    read = value.GetString();
                    return true;
                case ScalarKind.Int64 when value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var int64):
                    read = int64;
                    return true;
                case ScalarKind.Int32 when value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var int32):
                    read = int32;
                    return true;
                case ScalarKind.Double when value.ValueKind == JsonValueKind.Number && value.TryGetDouble(out var number):
                    read = number;
                    return true;
                case ScalarKind.Boolean when value.ValueKind is JsonValueKind.True or JsonValueKind.False:
                    read = value.ValueKind == JsonValueKind.True;
                    return true;
                default:
                    return false;
            }
        }

        /// <summary>Which scalar <see cref="TryReadScalar"/> reads for this parameter: only with the serializer's own converter.</summary>
        private static ScalarKind ScalarKindOf(JsonTypeInfo? typeInfo)
        {
            if (typeInfo is null || typeInfo.Converter.GetType().Assembly != typeof(JsonSerializer).Assembly)
            {
                return ScalarKind.None;
            }

            var type = typeInfo.Type;
            return type == typeof(string) ? ScalarKind.String
                : type == typeof(long) || type == typeof(long?) ? ScalarKind.Int64
                : type == typeof(int) || type == typeof(int?) ? ScalarKind.Int32
                : type == typeof(double) || type == typeof(double?) ? ScalarKind.Double
                : type == typeof(bool) || type == typeof(bool?) ? ScalarKind.Boolean
                : ScalarKind.None;
        }

        private object? ConvertWholeArgs(HookCall call, HookHandler hook)
        {
            try
            {
                if (wholeArgsNames is null || !NeedsRenaming(call.Args))
                {
                    return JsonSerializer.Deserialize(call.Args, typeInfo!);
                }

                var buffer = new ArrayBufferWriter<byte>(256);
                using (var writer = new Utf8JsonWriter(buffer))
                {
                    writer.WriteStartObject();
                    foreach (var property in call.Args.EnumerateObject())
                    {
                        writer.WritePropertyName(wholeArgsNames.GetValueOrDefault(Normalize(property.Name), property.Name));
                        property.Value.WriteTo(writer);
                    }

                    writer.WriteEndObject();
                }

                return JsonSerializer.Deserialize(buffer.WrittenSpan, typeInfo!);
            }
            catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException or NotSupportedException)
            {
                throw Error(call, hook, $"the args cannot be bound to parameter '{name}' ({TypeName(type)}): {e.Message}", e);
            }
        }

        private bool NeedsRenaming(JsonElement args)
        {
            foreach (var property in args.EnumerateObject())
            {
                if (wholeArgsNames!.TryGetValue(Normalize(property.Name), out var jsonName)
                    && !string.Equals(jsonName, property.Name, json.PropertyNameCaseInsensitive ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal))
                {
                    return true;
                }
            }

            return false;
        }

        private bool TryFind(JsonElement args, out JsonElement value)
        {
            if (args.TryGetProperty(name, out value))
            {
                return true;
            }

            foreach (var property in args.EnumerateObject())
            {
                if (NormalizedEquals(property.Name, normalized))
                {
                    value = property.Value;
                    return true;
                }
            }

            value = default;
            return false;
        }

        private HookBindingException Error(HookCall call, HookHandler hook, string what, Exception? inner) =>
            new(name, $"Hook {hook.Name} for '{call.Context.Label}': {what}.", inner);

        private static string TypeName(Type type) =>
            Nullable.GetUnderlyingType(type) is { } underlying ? underlying.Name + "?" : type.Name;

        /// <summary>Lower case without '_' and '-': <c>user_name</c>, <c>userName</c> and <c>UserName</c> meet.</summary>
        private static string Normalize(string name)
        {
            return string.Create(name.Length - name.Count(c => c is '_' or '-'), name, static (span, source) =>
            {
                var j = 0;
                foreach (var c in source)
                {
                    if (c is not ('_' or '-'))
                    {
                        span[j++] = char.ToLowerInvariant(c);
                    }
                }
            });
        }

        private static bool NormalizedEquals(string key, string normalizedName)
        {
            var j = 0;
            foreach (var c in key)
            {
                if (c is '_' or '-')
                {
                    continue;
                }

                if (j >= normalizedName.Length || char.ToLowerInvariant(c) != normalizedName[j])
                {
                    return false;
                }

                j++;
            }

            return j == normalizedName.Length;
        }
    }
}
